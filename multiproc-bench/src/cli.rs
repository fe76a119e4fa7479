//! Command-line options.

use std::path::PathBuf;

use crate::harness::Scale;

pub(crate) const HELP: &str = "\
multiproc-bench: multiproc side by side with Python multiprocessing, ipc-channel,
procspawn, crossbeam-channel (threads) and raw OS floors.

USAGE: cargo run --release -p multiproc-bench -- [OPTIONS]

OPTIONS:
  --quick            fewer runs and smaller counts (under a minute on 2 cores)
  --tiny             one run with tiny counts: a smoke test of every scenario
  --runs N           runs per system (default: 3 quick, 5 full, 1 tiny)
  --filter A,B       only scenarios whose id contains A or B
  --json PATH        also write the results as JSON
  --svg PATH         also draw a bar chart of the ratios to multiproc, and beside it
                     (PATH-scaling.svg) throughput against the process count of the
                     scaling rows
  -h, --help         this text
";

/// What the user asked for.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) scale: Scale,
    pub(crate) runs: Option<usize>,
    pub(crate) filter: Option<String>,
    pub(crate) json: Option<PathBuf>,
    pub(crate) svg: Option<PathBuf>,
    /// The arguments as given, for the report's "command" line.
    pub(crate) args: Vec<String>,
}

/// Either options to run with, or a request for help.
#[derive(Debug)]
pub(crate) enum Parsed {
    Run(Options),
    Help,
}

impl Options {
    pub(crate) fn parse() -> Result<Parsed, lexopt::Error> {
        use lexopt::prelude::*;
        let mut options = Options {
            scale: Scale::Full,
            runs: None,
            filter: None,
            json: None,
            svg: None,
            args: std::env::args().skip(1).collect(),
        };
        let mut parser = lexopt::Parser::from_env();
        while let Some(arg) = parser.next()? {
            match arg {
                Long("quick") => options.scale = Scale::Quick,
                Long("tiny") => options.scale = Scale::Tiny,
                Long("runs") => {
                    let runs: usize = parser.value()?.parse()?;
                    if runs == 0 {
                        return Err("--runs must be at least 1".into());
                    }
                    options.runs = Some(runs);
                }
                Long("filter") => options.filter = Some(parser.value()?.string()?),
                Long("json") => options.json = Some(parser.value()?.into()),
                Long("svg") => options.svg = Some(parser.value()?.into()),
                Short('h') | Long("help") => return Ok(Parsed::Help),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Parsed::Run(options))
    }

    /// Runs per system: enough for a median and a spread, few enough to stay short.
    pub(crate) fn runs(&self) -> usize {
        self.runs.unwrap_or(match self.scale {
            Scale::Tiny => 1,
            Scale::Quick => 3,
            Scale::Full => 5,
        })
    }
}
