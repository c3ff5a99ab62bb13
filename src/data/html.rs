//! Step 2: HTML → text.
//!
//! A small scanner, not a full HTML parser: it walks the bytes with `memchr` looking for `<` and
//! `&`, drops everything inside elements that are never body text (scripts, styles, navigation,
//! headers, footers...), turns block elements into line or paragraph breaks, and decodes entities.
//! Normalization (step 1) then collapses the whitespace this leaves.

use memchr::memchr2;

/// Elements whose whole content is dropped: code, styling, page chrome and navigation.
pub const DROP_ELEMENTS: &[&str] = &[
    "script", "style", "nav", "header", "footer", "noscript", "svg", "head", "template", "iframe",
    "select", "button", "form",
];

/// Elements that start a new paragraph (a blank line) in the text.
const PARAGRAPH_ELEMENTS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "table",
    "ul",
    "ol",
    "dl",
    "section",
    "article",
    "main",
    "aside",
    "figure",
];

/// Elements that start a new line.
const LINE_ELEMENTS: &[&str] = &["br", "div", "li", "tr", "dt", "dd", "hr", "td", "th"];

/// Extract the main text of an HTML page.
pub fn to_text(html: &str) -> String {
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() / 3);
    let mut i = 0;
    // Name of the element we are skipping, and how deeply it is nested in itself.
    let mut skipping: Option<(&str, usize)> = None;
    let mut pre_depth = 0usize;
    while i < b.len() {
        let Some(off) = memchr2(b'<', b'&', &b[i..]) else {
            if skipping.is_none() {
                push_text(&mut out, &html[i..], pre_depth > 0);
            }
            break;
        };
        let at = i + off;
        if skipping.is_none() {
            push_text(&mut out, &html[i..at], pre_depth > 0);
        }
        if b[at] == b'&' {
            let (decoded, len) = entity(&html[at..]);
            if skipping.is_none() {
                out.push_str(decoded.as_deref().unwrap_or("&"));
            }
            i = at + len;
            continue;
        }
        // A comment, doctype or CDATA section.
        if html[at..].starts_with("<!--") {
            i = html[at + 4..]
                .find("-->")
                .map_or(b.len(), |e| at + 4 + e + 3);
            continue;
        }
        if html[at..].starts_with("<!") || html[at..].starts_with("<?") {
            i = memchr::memchr(b'>', &b[at..]).map_or(b.len(), |e| at + e + 1);
            continue;
        }
        // An unterminated tag runs to the end of the input, so the scan stays linear.
        let Some((name, closing, self_closing, end)) = parse_tag(html, at) else {
            if skipping.is_none() {
                out.push('<');
            }
            i = at + 1;
            continue;
        };
        i = end;
        let lname = name.to_ascii_lowercase();
        if let Some((skip_name, depth)) = skipping {
            if lname == skip_name {
                if closing {
                    skipping = if depth == 1 {
                        None
                    } else {
                        Some((skip_name, depth - 1))
                    };
                } else if !self_closing {
                    skipping = Some((skip_name, depth + 1));
                }
            }
            continue;
        }
        if let Some(&drop) = DROP_ELEMENTS.iter().find(|&&d| d == lname) {
            if !closing && !self_closing {
                skipping = Some((drop, 1));
            }
            continue;
        }
        if lname == "pre" {
            pre_depth = if closing {
                pre_depth.saturating_sub(1)
            } else {
                pre_depth + 1
            };
        }
        if PARAGRAPH_ELEMENTS.contains(&lname.as_str()) {
            out.push_str("\n\n");
        } else if LINE_ELEMENTS.contains(&lname.as_str()) {
            out.push('\n');
        }
    }
    out
}

/// Text between tags: outside `<pre>` a newline in the source is just a space.
fn push_text(out: &mut String, text: &str, pre: bool) {
    if pre {
        out.push_str(text);
    } else {
        out.extend(text.chars().map(|c| if c == '\n' { ' ' } else { c }));
    }
}

/// Parse the tag starting at `at` (`<`): its name, whether it is a closing tag, whether it closes
/// itself (`<br/>`), and the byte after `>`. Quoted attribute values may contain `>`.
fn parse_tag(html: &str, at: usize) -> Option<(&str, bool, bool, usize)> {
    let b = html.as_bytes();
    let mut j = at + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let name_start = j;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b':') {
        j += 1;
    }
    if j == name_start || !b[name_start].is_ascii_alphabetic() {
        return None;
    }
    let name = &html[name_start..j];
    let mut quote = 0u8;
    while j < b.len() {
        let c = b[j];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            let self_closing = j > 0 && b[j - 1] == b'/';
            return Some((name, closing, self_closing, j + 1));
        }
        j += 1;
    }
    Some((name, closing, false, b.len()))
}

/// Decode the entity at the start of `s` (which starts with `&`). Returns the text and the bytes
/// consumed; an unknown entity decodes to `None` and consumes just the `&`.
fn entity(s: &str) -> (Option<String>, usize) {
    let end = s.as_bytes().iter().take(12).position(|&c| c == b';');
    let Some(end) = end else { return (None, 1) };
    let name = &s[1..end];
    let decoded = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        code.map(|c| char::from_u32(c).unwrap_or('\u{fffd}').to_string())
    } else {
        named_entity(name).map(str::to_string)
    };
    match decoded {
        Some(d) => (Some(d), end + 1),
        None => (None, 1),
    }
}

/// The named entities common in real pages.
fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "mdash" => "—",
        "ndash" => "–",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "laquo" => "«",
        "raquo" => "»",
        "middot" => "·",
        "bull" => "•",
        "times" => "×",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "para" => "¶",
        "sect" => "§",
        "deg" => "°",
        "shy" => "",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_chrome_keeps_paragraphs() {
        let html = r#"<html><head><title>T</title><style>p{color:red}</style></head>
<body><nav><a href="/">Home</a> | <a href="/x">Docs</a></nav>
<header>Site header</header>
<h1>Title</h1><p>First &amp; best
paragraph.</p><script>var a = "<p>no</p>";</script><p>Second&nbsp;one &lt;ok&gt; &#8212; &#x4e2d;</p>
<footer>© 2024</footer></body></html>"#;
        let text = super::super::normalize::normalize(to_text(html), false);
        assert_eq!(
            text,
            "Title\n\nFirst & best paragraph.\n\nSecond one <ok> — 中"
        );
    }

    #[test]
    fn nested_drop_elements_and_quoted_gt() {
        let html = r#"<nav><nav>in</nav>still nav</nav><a title="a>b">link</a><div>x</div>"#;
        assert_eq!(to_text(html), "link\nx\n");
    }

    #[test]
    fn stray_angle_and_ampersand_are_text() {
        assert_eq!(to_text("a < b & c"), "a < b & c");
        assert_eq!(to_text("1 <2 &unknown; x"), "1 <2 &unknown; x");
    }
}
