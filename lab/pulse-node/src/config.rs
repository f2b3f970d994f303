//! Command line, with the real node's quirks: unknown flags and stray words are
//! ignored silently, and a value that does not parse falls back to the default.

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_P2P_PORT: u16 = 4001;
pub const DEFAULT_DATA_DIR: &str = "./pulse-data";
pub const DEFAULT_THRESHOLD: u64 = 1;
pub const DEFAULT_INTERVAL_MS: u64 = 5000;
/// Smaller intervals are raised to this (an interval of 0 would spin).
pub const MIN_INTERVAL_MS: u64 = 50;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub port: u16,
    pub p2p_port: u16,
    pub data_dir: String,
    pub threshold: u64,
    pub interval_ms: u64,
    /// Raw `--peers` entries (comma-separated list, split and trimmed).
    pub peers: Vec<String>,
    pub simulate: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: DEFAULT_PORT,
            p2p_port: DEFAULT_P2P_PORT,
            data_dir: DEFAULT_DATA_DIR.to_string(),
            threshold: DEFAULT_THRESHOLD,
            interval_ms: DEFAULT_INTERVAL_MS,
            peers: Vec::new(),
            simulate: false,
        }
    }
}

impl Config {
    /// The effective configuration, as logged at start.
    pub fn describe(&self) -> String {
        format!(
            "port={} p2p_port={} data_dir={} threshold={} interval_ms={} peers=[{}] simulate={}",
            self.port,
            self.p2p_port,
            self.data_dir,
            self.threshold,
            self.interval_ms,
            self.peers.join(","),
            self.simulate
        )
    }
}

const VALUE_FLAGS: [&str; 6] = ["--port", "--p2p-port", "--data-dir", "--threshold", "--interval", "--peers"];

/// Parse the arguments after the program name. Never fails.
///
/// * `--flag value` and `--flag=value` are both accepted; the last occurrence wins.
/// * A flag whose value is missing (end of the line, or the next word starts
///   with `--`) keeps its default.
/// * A number that does not parse (or is out of range) keeps its default.
/// * `--simulate` takes no value; `--simulate=...` is an unknown flag.
/// * Everything else is ignored silently.
pub fn parse_args<I, S>(args: I) -> Config
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(|s| s.into()).collect();
    let mut cfg = Config::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with("--") {
            continue; // stray word: ignored
        }
        if arg == "--simulate" {
            cfg.simulate = true;
            continue;
        }
        let (name, inline) = match arg.find('=') {
            Some(eq) => (&arg[..eq], Some(arg[eq + 1..].to_string())),
            None => (arg.as_str(), None),
        };
        if !VALUE_FLAGS.contains(&name) {
            continue; // unknown flag: ignored
        }
        let value = match inline {
            Some(v) => Some(v),
            None => {
                if i < args.len() && !args[i].starts_with("--") {
                    i += 1;
                    Some(args[i - 1].clone())
                } else {
                    None
                }
            }
        };
        let value = match value {
            Some(v) => v,
            None => continue,
        };
        match name {
            "--port" => cfg.port = value.parse().unwrap_or(DEFAULT_PORT),
            "--p2p-port" => cfg.p2p_port = value.parse().unwrap_or(DEFAULT_P2P_PORT),
            "--data-dir" => cfg.data_dir = value,
            "--threshold" => cfg.threshold = value.parse().unwrap_or(DEFAULT_THRESHOLD),
            "--interval" => cfg.interval_ms = value.parse().unwrap_or(DEFAULT_INTERVAL_MS),
            "--peers" => {
                cfg.peers = value.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
            }
            _ => {}
        }
    }
    if cfg.interval_ms < MIN_INTERVAL_MS {
        cfg.interval_ms = MIN_INTERVAL_MS;
    }
    cfg
}

/// A peer to dial: host (IP literal or DNS name) and TCP port.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerAddr {
    pub host: String,
    pub port: u16,
    /// As given on the command line.
    pub raw: String,
}

/// Parse a peer address: a multiaddr `/ip4/A/tcp/P`, `/ip6/A/tcp/P`,
/// `/dns/H/tcp/P`, `/dns4/H/tcp/P`, `/dns6/H/tcp/P` (a trailing `/p2p/<id>` is
/// allowed and ignored), or a plain `host:port`.
pub fn parse_peer_addr(s: &str) -> Option<PeerAddr> {
    let s = s.trim();
    if s.starts_with('/') {
        let parts: Vec<&str> = s.split('/').skip(1).collect();
        if parts.len() < 4 || parts[2] != "tcp" {
            return None;
        }
        if parts.len() > 4 && !(parts.len() == 6 && (parts[4] == "p2p" || parts[4] == "ipfs")) {
            return None;
        }
        let host = parts[1];
        let ok = match parts[0] {
            "ip4" => host.parse::<std::net::Ipv4Addr>().is_ok(),
            "ip6" => host.parse::<std::net::Ipv6Addr>().is_ok(),
            "dns" | "dns4" | "dns6" => !host.is_empty(),
            _ => false,
        };
        let port = parts[3].parse::<u16>().ok()?;
        if !ok || port == 0 {
            return None;
        }
        Some(PeerAddr { host: host.to_string(), port, raw: s.to_string() })
    } else {
        let (host, port) = s.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse::<u16>().ok()?;
        if host.is_empty() || port == 0 {
            return None;
        }
        Some(PeerAddr { host: host.to_string(), port, raw: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Config {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let c = p(&[]);
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 8080);
        assert_eq!(c.p2p_port, 4001);
        assert_eq!(c.data_dir, "./pulse-data");
        assert_eq!(c.threshold, 1);
        assert_eq!(c.interval_ms, 5000);
        assert!(c.peers.is_empty());
        assert!(!c.simulate);
    }

    #[test]
    fn all_flags_space_form() {
        let c = p(&[
            "--port", "9000", "--p2p-port", "4100", "--data-dir", "/var/lib/pulse", "--threshold", "3",
            "--interval", "250", "--peers", "/ip4/10.0.1.5/tcp/4001, /ip4/10.0.1.6/tcp/4001,", "--simulate",
        ]);
        assert_eq!(c.port, 9000);
        assert_eq!(c.p2p_port, 4100);
        assert_eq!(c.data_dir, "/var/lib/pulse");
        assert_eq!(c.threshold, 3);
        assert_eq!(c.interval_ms, 250);
        assert_eq!(c.peers, vec!["/ip4/10.0.1.5/tcp/4001", "/ip4/10.0.1.6/tcp/4001"]);
        assert!(c.simulate);
    }

    #[test]
    fn equals_form() {
        let c = p(&["--port=9001", "--interval=700", "--data-dir=/tmp/x=y", "--peers=/ip4/127.0.0.1/tcp/5"]);
        assert_eq!(c.port, 9001);
        assert_eq!(c.interval_ms, 700);
        assert_eq!(c.data_dir, "/tmp/x=y");
        assert_eq!(c.peers, vec!["/ip4/127.0.0.1/tcp/5"]);
    }

    #[test]
    fn unknown_flags_and_words_are_ignored() {
        let c = p(&["serve", "--verbose", "--log-level", "debug", "-x", "--port", "9002", "--help", "--simulate=yes"]);
        assert_eq!(c.port, 9002);
        assert!(!c.simulate);
        assert_eq!(c.interval_ms, 5000);
    }

    #[test]
    fn bad_numbers_fall_back_to_defaults() {
        let c = p(&["--port", "http", "--p2p-port", "70000", "--threshold", "-2", "--interval", "abc"]);
        assert_eq!(c.port, 8080);
        assert_eq!(c.p2p_port, 4001);
        assert_eq!(c.threshold, 1);
        assert_eq!(c.interval_ms, 5000);
        // a later good value still wins, a later bad one resets to the default
        assert_eq!(p(&["--port", "1", "--port", "2"]).port, 2);
        assert_eq!(p(&["--port", "1", "--port", "x"]).port, 8080);
        assert_eq!(p(&["--port="]).port, 8080);
    }

    #[test]
    fn missing_values() {
        let c = p(&["--port", "--simulate", "--interval"]);
        assert_eq!(c.port, 8080);
        assert!(c.simulate);
        assert_eq!(c.interval_ms, 5000);
    }

    #[test]
    fn tiny_interval_is_raised() {
        assert_eq!(p(&["--interval", "0"]).interval_ms, MIN_INTERVAL_MS);
        assert_eq!(p(&["--interval", "10"]).interval_ms, MIN_INTERVAL_MS);
        assert_eq!(p(&["--interval", "51"]).interval_ms, 51);
    }

    #[test]
    fn peer_addresses() {
        let a = parse_peer_addr("/ip4/10.0.1.5/tcp/4001").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("10.0.1.5", 4001));
        let a = parse_peer_addr("/dns4/node-b.internal/tcp/4002").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("node-b.internal", 4002));
        let a = parse_peer_addr("/ip4/10.0.1.5/tcp/4001/p2p/12D3KooWabc").unwrap();
        assert_eq!(a.port, 4001);
        let a = parse_peer_addr("/ip6/::1/tcp/4001").unwrap();
        assert_eq!(a.host, "::1");
        let a = parse_peer_addr("127.0.0.1:4005").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 4005));
        for bad in ["/ip4/10.0.1/tcp/4001", "/ip4/10.0.1.5/udp/4001", "/ip4/10.0.1.5/tcp/x", "/ip4/10.0.1.5", "nohost", ":4001", "/ip4/1.2.3.4/tcp/0"] {
            assert!(parse_peer_addr(bad).is_none(), "{}", bad);
        }
    }
}
