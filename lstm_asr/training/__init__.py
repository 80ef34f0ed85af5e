"""Stage 6: training -- the loop and what it needs: resume, schedules, regularisers, devices and precision,
distributed data parallelism, logging. It sits on top: every epoch it decodes and scores the dev set."""
