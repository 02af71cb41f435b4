-- The curriculum against its schedule: tokens and documents each domain got in each phase,
-- its share of the phase's tokens, and the share the schedule asked for.
--
--   syllabus sql out/domain_upsampling -f sql/tokens_per_domain_per_phase.sql
SELECT c.phase,
       c.domain,
       count(*) AS documents,
       sum(c.tokens) AS tokens,
       round(sum(c.tokens) * 1.0 / sum(sum(c.tokens)) OVER (PARTITION BY c.phase), 4) AS share,
       round(p.mixture, 4) AS planned,
       max(c.pass) + 1 AS passes
FROM curriculum c
JOIN phases p ON p.phase = c.phase AND p.domain = c.domain
GROUP BY c.phase, c.domain, p.mixture
ORDER BY c.phase, c.domain;
