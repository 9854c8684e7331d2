//! One line of RFC 4180 CSV, as nsod writes `report.csv` and `track_summary.csv`: a field is quoted when it holds a
//! comma, a quote or a line break, quotes doubled inside; nsod writes no line break inside a field, so a record is
//! one line. Shared by the writers (the symbolic report, the track summary) and the readers (`nsod report`, resume).

/// A field as written: quoted when it holds `,`, `"`, `\n` or `\r`.
pub fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The fields of one line, unquoted (a quote opens or closes a quoted part; a doubled quote inside is one quote).
pub fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The first field of a line, unquoted (`None` for a quoted field that never closes: a line cut short).
pub fn first_field(line: &str) -> Option<String> {
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().map(str::to_owned);
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => return Some(out),
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written reads back, field by field, whatever the field holds.
    #[test]
    fn fields_read_back_what_quote_wrote() {
        let row = [
            "a.png",
            "plane, big",
            "say \"hi\"",
            "",
            "x\"",
            "\"",
            "1,2,\"3\"",
        ];
        let line = row.iter().map(|f| quote(f)).collect::<Vec<_>>().join(",");
        assert_eq!(
            line,
            "a.png,\"plane, big\",\"say \"\"hi\"\"\",,\"x\"\"\",\"\"\"\",\"1,2,\"\"3\"\"\""
        );
        assert_eq!(fields(&line), row);
        assert_eq!(first_field(&line).as_deref(), Some("a.png"));
        assert_eq!(first_field("\"b, c\"\"d\",1").as_deref(), Some("b, c\"d"));
        assert_eq!(first_field("\"cut"), None);
        assert_eq!(quote("plain"), "plain");
        assert_eq!(fields(""), [""]);
    }
}
