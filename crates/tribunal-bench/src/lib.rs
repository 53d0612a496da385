//! Agent benchmarks: τ-bench, τ²-bench, GAIA and WebArena results read from their files,
//! scored with the official metrics reproduced exactly (down to Python's float parsing and
//! NumPy's summation order), and broken down per task.
//!
//! One module per benchmark. Each holds the pure scoring (`score`, the matchers, no I/O) and
//! a small loader (`load*`) that reads files and names file, line and field in its errors.
//! [`py`] holds the Python and NumPy number semantics the reference code relies on.
//!
//! The trajectories themselves become traces in `tribunal-formats` (`tau` importer); this
//! crate only needs the numbers.

pub mod breakdown;
pub mod error;
pub mod gaia;
pub mod load;
pub mod py;
pub mod tau;
pub mod tau2;
pub mod webarena;

pub use error::{GraderError, LoadError, ScoreError};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// pass^k for k = 1..=n, serialized as `{"1": ..., "2": ...}` in k order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassHatK(pub Vec<(usize, f64)>);

impl PassHatK {
    /// The lines τ-bench's and τ²-bench's reference code print: average reward, then pass^k.
    pub fn reference_lines(&self, avg_reward: f64) -> String {
        let mut out = format!("🏆 Average reward: {}\n📈 Pass^k\n", py::repr(avg_reward));
        for (k, v) in &self.0 {
            out.push_str(&format!("  k={k}: {}\n", py::repr(*v)));
        }
        out
    }

    pub fn get(&self, k: usize) -> Option<f64> {
        self.0.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
    }
}

impl Serialize for PassHatK {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(&k.to_string(), v)?;
        }
        m.end()
    }
}
