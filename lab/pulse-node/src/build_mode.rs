//! Build mode of this stand-in. `make-release-repo.sh` flips `BROKEN` to `true`
//! for the `v1.3.0` tag: such a binary starts and serves, but `GET /health`
//! answers HTTP 503 `{"success":false,"error":"unhealthy"}` forever.
pub const BROKEN: bool = false;

/// `make-release-repo.sh` flips this to `false` for the `v1.4.1` tag: a release
/// whose own tests fail (`cargo test` fails, the binary itself is fine), so a
/// release pipeline must stop before it publishes anything.
pub const TESTS_PASS: bool = true;

#[cfg(test)]
mod tests {
    #[test]
    fn release_self_check_passes() {
        assert!(super::TESTS_PASS, "this release's self-check fails (TESTS_PASS = false)");
    }
}
