//! The little XML S3 needs: escaping what answers carry, and reading the two
//! request bodies S3 takes (CreateBucketConfiguration, Delete). Those bodies
//! are flat lists of simple elements, so a scan for named elements does what
//! a full parser would, entities included.

pub use crate::format::xml_escape as escape;

/// `text` with entity and character references resolved; an unknown or
/// malformed reference is kept as written.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let resolved = rest.find(';').and_then(|end| Some((resolve(&rest[1..end])?, end)));
        match resolved {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn resolve(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = match entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => entity.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The text of every `<name>…</name>` element in `doc`, in order, unescaped.
/// `<name/>` is an empty text.
pub fn texts(doc: &str, name: &str) -> Vec<String> {
    let (open, close, empty) = (format!("<{name}>"), format!("</{name}>"), format!("<{name}/>"));
    let mut found = Vec::new();
    let mut rest = doc;
    loop {
        let next_open = rest.find(&open).map(|at| (at, false));
        let next_empty = rest.find(&empty).map(|at| (at, true));
        let Some((at, is_empty)) = [next_open, next_empty].into_iter().flatten().min_by_key(|(at, _)| *at) else {
            return found;
        };
        if is_empty {
            found.push(String::new());
            rest = &rest[at + empty.len()..];
            continue;
        }
        let body = &rest[at + open.len()..];
        let Some(end) = body.find(&close) else { return found };
        found.push(unescape(&body[..end]));
        rest = &body[end + close.len()..];
    }
}

/// Whether `doc` has a root element named `name` (after any declaration),
/// whatever its attributes.
pub fn has_root(doc: &str, name: &str) -> bool {
    let mut body = doc.trim_start();
    if let Some(declaration) = body.strip_prefix("<?") {
        body = declaration.split_once("?>").map_or("", |(_, rest)| rest).trim_start();
    }
    body.strip_prefix('<').and_then(|rest| rest.strip_prefix(name)).is_some_and(|rest| rest.starts_with(['>', ' ', '/', '\n']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        let text = r#"a&b <c> "d" 'e' é"#;
        assert_eq!(escape(text), "a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos; é");
        assert_eq!(unescape(&escape(text)), text);
        assert_eq!(unescape("&#65;&#x42;&unknown; & lone"), "AB&unknown; & lone");
    }

    #[test]
    fn elements_are_found_in_order_with_their_entities() {
        let doc = r#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key></Object><Quiet>true</Quiet></Delete>"#;
        assert!(has_root(doc, "Delete"));
        assert!(!has_root(doc, "Del"));
        assert_eq!(texts(doc, "Key"), vec!["a&b", "c"]);
        assert_eq!(texts(doc, "Quiet"), vec!["true"]);
        assert_eq!(texts("<A><Key/><Key>x</Key></A>", "Key"), vec!["", "x"]);
        assert!(texts(doc, "VersionId").is_empty());
    }
}
