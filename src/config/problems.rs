//! What is wrong with a config file: one [`Problem`] (a dotted key path and what to do),
//! and [`Problems`], the list every check of `validate` and of the sections with a file of
//! their own (`browser`) adds to, so that every problem is reported at once.

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `routes[2].access`.
    pub path: String,
    /// What is wrong and how to fix it, as a lowercase phrase.
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// Collects problems while the checks run.
#[derive(Default)]
pub(super) struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            problem: problem.into(),
        });
    }
}
