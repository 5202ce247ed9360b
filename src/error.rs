//! The top-level error: every module's typed error, its exit code, and the
//! one reporter that prints an error with its place, causes and hint.

use std::path::Path;

use crate::compile::CompileError;
use crate::diagnostic::{Diagnostic, Location};
use crate::exec::ExecError;
use crate::graph::GraphError;
use crate::project::ProjectError;

/// Anything that stops a command before or outside model execution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A query given on the command line (`wh query`, `wh show`) failed.
    #[error(transparent)]
    Query(#[from] ExecError),
    #[error("{message}")]
    Usage { message: String, hint: Option<String> },
    #[error("cannot write `{}`", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    /// An `on-run-start` or `on-run-end` hook failed.
    #[error("{}", .0.message)]
    Hook(Diagnostic),
    /// A broken invariant inside wh.
    #[error("internal error: {0} (this is a bug in wh; please report it)")]
    Internal(String),
}

impl Error {
    /// Returns the exit code: 2 for project and usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } | Error::Internal(_) | Error::Hook(_) => 1,
            Error::Query(ExecError::Runtime { .. } | ExecError::Timeout { .. }) => 1,
            _ => 2,
        }
    }

    /// Returns where in the project the error is, if known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Project(ProjectError::Yaml { location, .. } | ProjectError::Invalid { location, .. }) => {
                Some(location)
            }
            Error::Compile(e) => Some(&e.location),
            Error::Graph(GraphError::Cycle { location, .. } | GraphError::Artifact { location, .. }) => Some(location),
            Error::Query(ExecError::Source { location, .. }) => Some(location),
            Error::Hook(d) => d.location.as_ref(),
            _ => None,
        }
    }

    /// Returns the hint, if any.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Project(
                ProjectError::Yaml { hint, .. } | ProjectError::Invalid { hint, .. } | ProjectError::Usage { hint, .. },
            ) => hint.clone(),
            Error::Compile(e) => e.hint.clone(),
            Error::Graph(GraphError::Selector { hint, .. }) => hint.clone(),
            Error::Graph(GraphError::Artifact { .. }) => {
                Some("delete it (the next run writes it again), or point --state at another folder".into())
            }
            Error::Graph(GraphError::Cycle { .. }) => {
                Some("`a -> b` means `a` refs `b`; remove one ref to break the cycle".into())
            }
            Error::Query(e) => e.hint().map(str::to_string),
            Error::Usage { hint, .. } => hint.clone(),
            Error::Hook(d) => d.hint.clone(),
            _ => None,
        }
    }
}

impl Error {
    /// The error as one diagnostic: its message with its causes, place
    /// and hint.
    pub fn diagnostic(&self) -> Diagnostic {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        // transparent variants share their source with the inner error: skip it
        if matches!(self, Error::Project(_) | Error::Compile(_) | Error::Graph(_) | Error::Query(_)) {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(cause) = source {
            message.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        Diagnostic { message, location: self.location().cloned(), hint: self.hint() }
    }
}

/// Formats an error for stderr: message, causes, place and hint.
pub fn render(err: &Error, root: &Path) -> String {
    err.diagnostic().render("error", root)
}
