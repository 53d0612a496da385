//! BM25 ranking (Robertson & Zaragoza's Okapi BM25, k1 = 1.2, b = 0.75) over short texts:
//! which stored examples are most like the item being judged.

use std::collections::{BTreeMap, BTreeSet};

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Lower-cased alphanumeric words.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An index over documents, by position.
#[derive(Debug, Clone, Default)]
pub struct Index {
    docs: Vec<BTreeMap<String, usize>>,
    lengths: Vec<usize>,
    /// Documents each term occurs in.
    df: BTreeMap<String, usize>,
}

impl Index {
    pub fn new<'a>(docs: impl IntoIterator<Item = &'a str>) -> Index {
        let mut index = Index::default();
        for d in docs {
            let mut tf: BTreeMap<String, usize> = BTreeMap::new();
            let words = tokens(d);
            index.lengths.push(words.len());
            for w in words {
                *tf.entry(w).or_default() += 1;
            }
            for t in tf.keys() {
                *index.df.entry(t.clone()).or_default() += 1;
            }
            index.docs.push(tf);
        }
        index
    }

    /// Each document's score for `query`.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let n = self.docs.len() as f64;
        let avg = if self.docs.is_empty() {
            0.0
        } else {
            self.lengths.iter().sum::<usize>() as f64 / n
        };
        let terms: BTreeSet<String> = tokens(query).into_iter().collect();
        self.docs
            .iter()
            .zip(&self.lengths)
            .map(|(tf, len)| {
                terms
                    .iter()
                    .map(|t| {
                        let f = *tf.get(t).unwrap_or(&0) as f64;
                        if f == 0.0 {
                            return 0.0;
                        }
                        let df = *self.df.get(t).unwrap_or(&0) as f64;
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        let norm = if avg > 0.0 { *len as f64 / avg } else { 1.0 };
                        idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * norm))
                    })
                    .sum()
            })
            .collect()
    }

    /// The positions of the `k` best documents for `query`, best first (ties by position),
    /// leaving out documents that share no word with it.
    pub fn top(&self, query: &str, k: usize) -> Vec<usize> {
        let scores = self.scores(query);
        let mut order: Vec<usize> = (0..scores.len()).filter(|i| scores[*i] > 0.0).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
        order.truncate(k);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_document_ranks_first() {
        let docs = [
            "refund for a damaged laptop after 40 days",
            "change the shipping address of my order",
            "refund a laptop bought yesterday",
            "the weather today",
        ];
        let idx = Index::new(docs.iter().copied());
        assert_eq!(idx.top("laptop refund after 40 days", 2), [0, 2]);
        assert_eq!(idx.top("shipping address", 3), [1]);
        assert!(idx.top("nothing matches", 3).is_empty());
        // Rare words weigh more than common ones.
        let s = idx.scores("weather refund");
        assert!(s[3] > s[0], "{s:?}");
    }
}
