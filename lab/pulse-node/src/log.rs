//! One line per event, in the style of `tracing`'s human format:
//! `2024-05-01T12:00:00.123Z  INFO pulse_node: message`.
//! INFO goes to stdout, WARN and ERROR to stderr.

use std::io::Write;

use crate::util::now_ms;

pub fn info(msg: &str) {
    emit("INFO", msg, false);
}

pub fn warn(msg: &str) {
    emit("WARN", msg, true);
}

pub fn error(msg: &str) {
    emit("ERROR", msg, true);
}

fn emit(level: &str, msg: &str, to_stderr: bool) {
    // keep one event on one line
    let msg = msg.replace('\n', " ");
    let line = format!("{} {:>5} pulse_node: {}\n", rfc3339(now_ms()), level, msg);
    // write errors (closed stdout) are ignored on purpose: logging must never kill the node
    if to_stderr {
        let stderr = std::io::stderr();
        let mut h = stderr.lock();
        let _ = h.write_all(line.as_bytes());
        let _ = h.flush();
    } else {
        let stdout = std::io::stdout();
        let mut h = stdout.lock();
        let _ = h.write_all(line.as_bytes());
        let _ = h.flush();
    }
}

/// UTC timestamp with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
