//! Build mode of this stand-in. `make-release-repo.sh` flips `BROKEN` to `true`
//! for the `v1.3.0` tag: such a binary starts and serves, but `GET /health`
//! answers HTTP 503 `{"success":false,"error":"unhealthy"}` forever.
pub const BROKEN: bool = false;
