//! JUnit XML for CI systems: one test case per model and per assertion, in
//! the shape Jenkins, GitLab and GitHub test reporters read.

use std::fmt::Write;

use crate::quality::run::Outcome;
use crate::quality::Status;
use crate::results::{NodeResult, Status as ModelStatus};

/// Renders models and assertion outcomes as a JUnit `<testsuites>` document.
pub fn render(project: &str, command: &str, timestamp: &str, models: &[NodeResult], outcomes: &[&Outcome]) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped, mut time) = (0, 0, 0, 0.0);
    for m in models {
        time += m.seconds;
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.models\" name=\"{}\" time=\"{:.3}\"",
            esc(project),
            esc(&m.name),
            m.seconds
        );
        match m.status {
            ModelStatus::Success => cases.push_str("/>\n"),
            ModelStatus::Error => {
                errors += 1;
                let _ = write!(
                    cases,
                    ">\n      <error message=\"{}\" type=\"model\">{}</error>\n    </testcase>\n",
                    esc(first_line(&m.message)),
                    esc(&m.message)
                );
            }
            ModelStatus::Skipped => {
                skipped += 1;
                let _ = write!(cases, ">\n      <skipped message=\"{}\"/>\n    </testcase>\n", esc(&m.message));
            }
        }
    }
    for o in outcomes {
        time += o.seconds;
        let a = &o.assertion;
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
            esc(project),
            esc(a.subject.name()),
            esc(&a.name),
            o.seconds
        );
        let detail = format!(
            "{} {} on {}{}: {}{}",
            a.severity.as_str(),
            a.kind,
            a.subject.name(),
            a.column.as_ref().map(|c| format!(".{c}")).unwrap_or_default(),
            o.message,
            o.sample.as_ref().map(|s| format!(" (sample: {s})")).unwrap_or_default()
        );
        match o.status {
            Status::Pass => cases.push_str("/>\n"),
            Status::Warn => {
                let _ = write!(cases, ">\n      <system-out>warning: {}</system-out>\n    </testcase>\n", esc(&detail));
            }
            Status::Fail => {
                failures += 1;
                let _ = write!(
                    cases,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                    esc(&o.message),
                    esc(&a.kind),
                    esc(&detail)
                );
            }
            Status::Error => {
                errors += 1;
                let _ = write!(
                    cases,
                    ">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>\n",
                    esc(first_line(&o.message)),
                    esc(&a.kind),
                    esc(&detail)
                );
            }
        }
    }
    let tests = models.len() + outcomes.len();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"wh\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">\n  \
         <testsuite name=\"{}.{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\">\n\
         {cases}  </testsuite>\n</testsuites>\n",
        esc(project),
        esc(command),
        esc(timestamp)
    )
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}
