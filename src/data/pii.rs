//! Step 8: PII scrubbing. E-mail addresses become [`EMAIL_PLACEHOLDER`] and IPv4 addresses
//! [`IP_PLACEHOLDER`] (FineWeb does the same with its own placeholders). Both scans jump from
//! one `@` or `.` candidate to the next with `memchr`, so clean text costs almost nothing.

use memchr::memchr;

pub const EMAIL_PLACEHOLDER: &str = "<EMAIL>";
pub const IP_PLACEHOLDER: &str = "<IP>";

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Find e-mail addresses: `local@domain.tld` with a letters-only TLD of 2+ characters.
/// Returns byte ranges.
fn emails(t: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while let Some(off) = memchr(b'@', &t[i..]) {
        let at = i + off;
        i = at + 1;
        let mut s = at;
        while s > 0 && is_local(t[s - 1]) {
            s -= 1;
        }
        while s < at && t[s] == b'.' {
            s += 1;
        }
        let mut e = at + 1;
        while e < t.len() && is_domain(t[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(t[e - 1], b'.' | b'-') {
            e -= 1;
        }
        let domain = &t[at + 1..e];
        let Some(dot) = domain.iter().rposition(|&b| b == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        if s == at || dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
            continue;
        }
        if out.last().is_none_or(|&(_, pe)| s >= pe) {
            out.push((s, e));
            i = e;
        }
    }
    out
}

/// Find IPv4 addresses: four dot-separated numbers 0..=255, not part of a longer dotted number.
fn ipv4s(t: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = memchr(b'.', &t[i..]) {
        let dot = i + off;
        i = dot + 1;
        // Start of the number before this dot.
        let mut s = dot;
        while s > 0 && t[s - 1].is_ascii_digit() {
            s -= 1;
        }
        if s == dot || (s > 0 && (t[s - 1] == b'.' || t[s - 1].is_ascii_alphanumeric())) {
            continue;
        }
        let mut p = s;
        let mut parts = 0;
        let mut ok = true;
        while parts < 4 {
            let d0 = p;
            while p < t.len() && t[p].is_ascii_digit() && p - d0 < 4 {
                p += 1;
            }
            let num = std::str::from_utf8(&t[d0..p])
                .ok()
                .and_then(|n| n.parse::<u32>().ok());
            if p == d0 || p - d0 > 3 || num.is_none_or(|n| n > 255) {
                ok = false;
                break;
            }
            parts += 1;
            if parts < 4 {
                if p < t.len() && t[p] == b'.' {
                    p += 1;
                } else {
                    ok = false;
                    break;
                }
            }
        }
        let bad_tail = p < t.len()
            && (t[p].is_ascii_alphanumeric()
                || (t[p] == b'.' && t.get(p + 1).is_some_and(u8::is_ascii_digit)));
        if ok && !bad_tail {
            out.push((s, p));
            i = p;
        }
    }
    out
}

/// Replace e-mail and IPv4 addresses. Returns the new text (if any was found) and the counts.
pub fn scrub(text: &str) -> (Option<String>, usize, usize) {
    let t = text.as_bytes();
    let e = emails(t);
    let ip = ipv4s(t);
    if e.is_empty() && ip.is_empty() {
        return (None, 0, 0);
    }
    let mut spans: Vec<(usize, usize, &str)> = e
        .iter()
        .map(|&(s, x)| (s, x, EMAIL_PLACEHOLDER))
        .chain(ip.iter().map(|&(s, x)| (s, x, IP_PLACEHOLDER)))
        .collect();
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let (mut last, mut n_email, mut n_ip) = (0, 0, 0);
    for (s, x, rep) in spans {
        if s < last {
            continue; // an IP inside an e-mail domain: already replaced
        }
        out.push_str(&text[last..s]);
        out.push_str(rep);
        if rep == EMAIL_PLACEHOLDER {
            n_email += 1
        } else {
            n_ip += 1
        }
        last = x;
    }
    out.push_str(&text[last..]);
    (Some(out), n_email, n_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_ips_are_replaced() {
        let (t, e, i) =
            scrub("Mail jane.doe+x@mail.example.org or root@10.0.0.1, server 192.168.1.20.");
        assert_eq!(t.unwrap(), "Mail <EMAIL> or root@<IP>, server <IP>.");
        assert_eq!((e, i), (1, 2));
    }

    #[test]
    fn lookalikes_are_kept() {
        for s in [
            "version 1.2.3.4.5",
            "value 256.1.1.1",
            "@decorator",
            "a@b",
            "x@y.c0m",
            "v1.2.3.4",
            "3.14159",
        ] {
            assert_eq!(scrub(s), (None, 0, 0), "{s}");
        }
        assert_eq!(
            scrub("文件 user@example.com 中").0.unwrap(),
            "文件 <EMAIL> 中"
        );
    }
}
