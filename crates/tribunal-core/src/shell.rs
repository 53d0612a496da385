//! Reading shell command lines: what both the dangerous-commands detector and the tool
//! classes of the policy facts need from a command's words.

/// Words that only run the command after them (`sudo -E pip install x` runs `pip`), and the
/// shell words that may stand before a command (`then`, `do`, `!`, `(`, `{`).
pub const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "nohup", "exec", "time", "command", "nice", "then", "do", "!", "(", "{",
];

/// The words of one simple command from its program on: past [`WRAPPERS`] with their options
/// (`-u USER`, `-g GROUP`, `-n N`, `-C N` take a value) and variable assignments (`A=1`).
pub fn after_wrappers<'w, 'a>(words: &'w [&'a str]) -> &'w [&'a str] {
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let assignment = w.split_once('=').is_some_and(|(n, _)| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if WRAPPERS.contains(&w) || assignment {
            i += 1;
            while i < words.len() && words[i].starts_with('-') {
                i += if matches!(words[i], "-u" | "-g" | "-n" | "-C") {
                    2
                } else {
                    1
                };
            }
        } else {
            break;
        }
    }
    &words[i.min(words.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_and_assignments_are_passed_over() {
        let words = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
        for (line, program) in [
            ("sudo -u root -E pip install x", "pip"),
            ("A=1 B=2 env C=3 nohup git push", "git"),
            ("then ! make", "make"),
            ("ls -la", "ls"),
        ] {
            let w = words(line);
            assert_eq!(after_wrappers(&w).first(), Some(&program), "{line}");
        }
        assert!(after_wrappers(&words("sudo -E")).is_empty());
    }
}
