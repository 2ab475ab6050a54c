//! Interface names as the kernel takes them (pure): any device that names an
//! interface checks it here before the kernel does.

use crate::error::{Error, Result};

/// Checks an interface name or template the way the kernel will.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > libc::IFNAMSIZ - 1 {
        return Err(Error::NameTooLong {
            name: name.to_string(),
        });
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("must not contain '/', ':' or whitespace");
    }
    let pct = name.matches('%').count();
    if pct > 1 || (pct == 1 && !name.contains("%d")) {
        return bad("a template may hold one `%d` and no other `%`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("rtap%d").is_ok());
        assert!(validate_name("tap0").is_ok());
        assert!(matches!(
            validate_name("a-very-long-name0"),
            Err(Error::NameTooLong { .. })
        ));
        assert!(validate_name("a b").is_err());
        assert!(validate_name("x%s").is_err());
        assert!(validate_name("x%d%d").is_err());
        assert!(validate_name("").is_err());
    }
}
