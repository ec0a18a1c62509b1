//! One retry policy for registry requests and docker steps: server errors, lost
//! connections and `429 Too Many Requests` are tried again with exponential backoff (a
//! server's `Retry-After` honoured up to a cap); anything else is final.

use std::time::Duration;

/// How often and how long to wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Tries in all, the first included.
    pub(crate) attempts: u32,
    /// The first pause; each next one doubles, up to `max_pause`.
    pub(crate) first_pause: Duration,
    pub(crate) max_pause: Duration,
    /// The longest `Retry-After` honoured; a longer one is waited for this long.
    pub(crate) max_retry_after: Duration,
}

/// Five tries over about 7.5 s of backoff: enough for a registry restart or a brief
/// overload, short enough that a dead registry fails a CI job in seconds.
pub(crate) const DEFAULT: Policy = Policy {
    attempts: 5,
    first_pause: Duration::from_millis(500),
    max_pause: Duration::from_secs(4),
    max_retry_after: Duration::from_secs(30),
};

/// What one attempt's outcome means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Done: success, or a failure that trying again cannot mend.
    Final,
    /// Worth another try: why, and the pause the peer asked for.
    Again {
        why: String,
        after: Option<Duration>,
    },
}

impl Policy {
    /// The pause before try `attempt + 1` (counting from 1).
    pub(crate) fn pause(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        match asked {
            Some(asked) => asked.min(self.max_retry_after),
            None => self
                .first_pause
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(self.max_pause),
        }
    }

    /// Runs `attempt` until `classify` calls its outcome final or the tries run out,
    /// saying on stderr why each retry happens.
    pub(crate) fn run<R>(&self, attempt: impl FnMut() -> R, classify: impl Fn(&R) -> Verdict) -> R {
        self.run_until(None, attempt, classify)
    }

    /// [`Policy::run`], never pausing past `until`: work under a shared deadline (a base's
    /// layers) spends its retries within it, however many requests it makes. A retry that
    /// would start past `until` is not made; the deadline is waited out instead, so the
    /// caller can tell that time, not the peer's answer, ended the work.
    pub(crate) fn run_until<R>(
        &self,
        until: Option<std::time::Instant>,
        mut attempt: impl FnMut() -> R,
        classify: impl Fn(&R) -> Verdict,
    ) -> R {
        let mut tried = 1;
        loop {
            let outcome = attempt();
            match classify(&outcome) {
                Verdict::Again { why, after } if tried < self.attempts => {
                    let pause = self.pause(tried, after);
                    let now = std::time::Instant::now();
                    if let Some(until) = until.filter(|&until| now + pause >= until) {
                        std::thread::sleep(until.saturating_duration_since(now));
                        return outcome;
                    }
                    eprintln!(
                        "  transient failure ({why}), retrying in {:.1}s ({tried}/{})",
                        pause.as_secs_f64(),
                        self.attempts - 1
                    );
                    std::thread::sleep(pause);
                    tried += 1;
                }
                _ => return outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_honour_retry_after() {
        let policy = DEFAULT;
        let pauses: Vec<u128> = (1..=5).map(|a| policy.pause(a, None).as_millis()).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 4000]);
        assert_eq!(
            policy.pause(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.pause(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retries_stop_at_a_final_outcome_or_the_last_try() {
        let policy = Policy {
            first_pause: Duration::ZERO,
            ..DEFAULT
        };
        let mut calls = 0;
        let outcome = policy.run(
            || {
                calls += 1;
                calls
            },
            |&n| match n {
                n if n < 3 => Verdict::Again {
                    why: "503".into(),
                    after: None,
                },
                _ => Verdict::Final,
            },
        );
        assert_eq!((outcome, calls), (3, 3));
        let mut calls = 0;
        policy.run(
            || calls += 1,
            |_| Verdict::Again {
                why: "503".into(),
                after: None,
            },
        );
        assert_eq!(calls, 5);
    }

    #[test]
    fn retries_under_a_deadline_end_at_it() {
        let policy = Policy {
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_millis(100),
            ..DEFAULT
        };
        let started = std::time::Instant::now();
        let until = started + Duration::from_millis(250);
        let mut calls = 0;
        policy.run_until(
            Some(until),
            || calls += 1,
            |_| Verdict::Again {
                why: "429".into(),
                after: None,
            },
        );
        let took = started.elapsed();
        assert_eq!(
            calls, 3,
            "tries at 0, 100 and 200 ms; a fourth would start past 250"
        );
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(400),
            "{took:?}"
        );
    }
}
