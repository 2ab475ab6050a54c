//! The sharing protocol's messages (pure: no fds, no sockets).
//!
//! One `SOCK_SEQPACKET` message each way, text, a verb then `key=value` words:
//!
//! ```text
//! client: attach queues=0,2            (or queues=all)
//! server: ok kind=KIND name=NAME ifindex=7 queues=0,2 offloads=csum,tso4 netns=0
//!         fds_per_queue=N [the device's own words]
//!         + fds: N per queue, in order; each queue's counter memory (a sealed
//!           memfd), in order; the netns if netns=1
//! server: err busy queue 2 is held by process 4242 (uid 1000)
//! client: status
//! server: status queues=4 q0=serving q1=free q2=pid:4242,uid:1000 q3=free
//! ```
//!
//! Error codes: `busy` (queue taken), `nosuch` (no such queue), `refused`
//! (credentials), `full` (too many connections, or no memory for a lend),
//! `proto` (a malformed or repeated request).

/// Protocol version carried in every reply (`v=`); a client refuses others.
pub(crate) const VERSION: u32 = 4;

/// Largest message.
pub(crate) const MAX_MSG: usize = 4096;

/// A parsed message: verb, `key=value` words, and for `err` the code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Msg {
    pub verb: String,
    pub kv: Vec<(String, String)>,
}

impl Msg {
    pub(crate) fn new(verb: &str) -> Msg {
        Msg {
            verb: verb.into(),
            kv: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, k: &str, v: impl std::fmt::Display) -> Msg {
        self.kv.push((k.into(), v.to_string()));
        self
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    /// The message as bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut s = self.verb.clone();
        for (k, v) in &self.kv {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.into_bytes()
    }

    /// Parses a message; `None` if it is not one (not UTF-8, no verb, a word
    /// without `=`, a value with a space).
    pub(crate) fn decode(b: &[u8]) -> Option<Msg> {
        let s = std::str::from_utf8(b).ok()?;
        let mut words = s.split(' ');
        let verb = words.next().filter(|v| !v.is_empty() && !v.contains('='))?;
        if verb == "err" {
            // err CODE free text
            let code = words.next()?;
            let text: Vec<&str> = words.collect();
            return Some(
                Msg::new("err")
                    .with("code", code)
                    .with("text", text.join(" ")),
            );
        }
        let mut m = Msg::new(verb);
        for w in words {
            let (k, v) = w.split_once('=')?;
            if k.is_empty() {
                return None;
            }
            m.kv.push((k.into(), v.into()));
        }
        Some(m)
    }

    /// An error reply: `err CODE text` (text may have spaces).
    pub(crate) fn err(code: &str, text: &str) -> Vec<u8> {
        format!("err {code} {text}").into_bytes()
    }
}

/// Which queues an attach asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueSel {
    /// Every queue of the port.
    All,
    /// These queues (primary's numbering), in this order.
    List(Vec<u16>),
}

impl std::fmt::Display for QueueSel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueSel::All => f.write_str("all"),
            QueueSel::List(l) => {
                let s: Vec<String> = l.iter().map(|q| q.to_string()).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// Parses `all` or a list like `0,2`, `0+2` (the form a port spec can carry:
/// its items are separated by commas) or `0-3` (no duplicates).
pub fn parse_queue_sel(s: &str) -> Result<QueueSel, String> {
    if s == "all" {
        return Ok(QueueSel::All);
    }
    let mut out: Vec<u16> = Vec::new();
    for part in s.split([',', '+']) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let num = |x: &str| {
            x.trim()
                .parse::<u16>()
                .map_err(|_| format!("{x:?} is not a queue number"))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("range {part:?} runs backwards"));
        }
        for q in a..=b {
            if out.contains(&q) {
                return Err(format!("queue {q} named twice"));
            }
            out.push(q);
        }
    }
    if out.is_empty() || out.len() > 128 {
        return Err("between 1 and 128 queues".into());
    }
    Ok(QueueSel::List(out))
}

/// Who holds a queue of a served port.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueHolder {
    /// Nobody: it can be attached.
    Free,
    /// The serving process itself (it has a handle of the queue open).
    Serving,
    /// Another process, attached over the socket.
    Process {
        /// Its pid.
        pid: i32,
        /// Its uid.
        uid: u32,
    },
}

impl std::fmt::Display for QueueHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueHolder::Free => f.write_str("free"),
            QueueHolder::Serving => f.write_str("serving"),
            QueueHolder::Process { pid, uid } => write!(f, "pid:{pid},uid:{uid}"),
        }
    }
}

impl std::str::FromStr for QueueHolder {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "free" => Ok(QueueHolder::Free),
            "serving" => Ok(QueueHolder::Serving),
            _ => {
                let (p, u) = s.split_once(',').ok_or(())?;
                let pid = p.strip_prefix("pid:").ok_or(())?.parse().map_err(|_| ())?;
                let uid = u.strip_prefix("uid:").ok_or(())?.parse().map_err(|_| ())?;
                Ok(QueueHolder::Process { pid, uid })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip() {
        let m = Msg::new("ok").with("kind", "k").with("queues", "0,2");
        assert_eq!(Msg::decode(&m.encode()), Some(m));
        let e = Msg::decode(&Msg::err("busy", "queue 2 is held by process 7")).unwrap();
        assert_eq!(e.get("code"), Some("busy"));
        assert_eq!(e.get("text"), Some("queue 2 is held by process 7"));
        for bad in [&b""[..], b"=x", b"ok novalue", b"ok =v", b"\xff\xfe"] {
            assert_eq!(Msg::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn queue_lists() {
        assert_eq!(parse_queue_sel("all"), Ok(QueueSel::All));
        assert_eq!(parse_queue_sel("0,2"), Ok(QueueSel::List(vec![0, 2])));
        assert_eq!(
            parse_queue_sel("1-3,7"),
            Ok(QueueSel::List(vec![1, 2, 3, 7]))
        );
        assert!(parse_queue_sel("3-1").is_err());
        assert!(parse_queue_sel("1,1").is_err());
        assert!(parse_queue_sel("x").is_err());
        assert!(parse_queue_sel("").is_err());
        assert!(parse_queue_sel("0-200").is_err());
        assert_eq!(QueueSel::List(vec![1, 2]).to_string(), "1,2");
    }

    #[test]
    fn holders_round_trip() {
        for h in [
            QueueHolder::Free,
            QueueHolder::Serving,
            QueueHolder::Process { pid: 42, uid: 1000 },
        ] {
            assert_eq!(h.to_string().parse::<QueueHolder>(), Ok(h));
        }
        assert!("pid:x,uid:1".parse::<QueueHolder>().is_err());
    }

    proptest! {
        /// Whatever arrives on the socket, decoding never panics, and what
        /// decodes re-encodes to something that decodes the same.
        #[test]
        fn decode_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(m) = Msg::decode(&b) {
                if m.verb != "err" {
                    prop_assert_eq!(Msg::decode(&m.encode()), Some(m));
                }
            }
        }

        #[test]
        fn queue_sel_any_text(s in "[0-9,\\-a-z]{0,20}") {
            let _ = parse_queue_sel(&s);
        }
    }
}
