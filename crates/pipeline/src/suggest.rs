//! "Did you mean …?" for misspelled keys, job names, params and variables.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for cand in candidates {
        if cand == word {
            continue;
        }
        let cl = cand.to_lowercase();
        // Close in edits (about one per three characters), or sharing a long prefix
        // ("failed" → "failure"), both count as plausible typos; among those the most
        // similar by Jaro-Winkler (which rewards a common prefix) wins.
        let limit = (word.chars().count().max(cand.chars().count()) / 3).max(1);
        let score = strsim::jaro_winkler(&lower, &cl);
        let prefix = lower.chars().count() >= 3 && cl.starts_with(&lower);
        let plausible = cl == lower
            || prefix
            || strsim::damerau_levenshtein(&lower, &cl) <= limit
            || score >= 0.9;
        if plausible && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean "x"?`, or `None`.
pub(crate) fn help_did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean {c:?}?"))
}

/// `"a", "b", "c"` for messages.
pub(crate) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = [
            "needs", "when", "image", "script", "services", "timeout", "retry",
        ];
        let cases = [
            ("need", Some("needs")),
            ("scirpt", Some("script")),
            ("Image", Some("image")),
            ("servises", Some("services")),
            ("tiemout", Some("timeout")),
            ("x", None),
            ("deploy", None),
            ("stages", None),
        ];
        for (word, expect) in cases {
            assert_eq!(did_you_mean(word, keys), expect, "{word}");
        }
        let outcomes = ["failure", "success", "fixed", "always"];
        assert_eq!(did_you_mean("failed", outcomes), Some("failure"));
        assert_eq!(did_you_mean("sucess", outcomes), Some("success"));
        assert_eq!(
            did_you_mean("prod", ["staging", "production"]),
            Some("production")
        );
        assert_eq!(
            did_you_mean("sometimes", ["success", "failure", "always"]),
            None
        );
    }
}
