"""Schedule: when each list's editions are due (APScheduler cron triggers as a clock)."""
