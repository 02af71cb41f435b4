-- The five most and the five least target-like documents of the lake by DSIR weight, with the
-- start of their text: a quick look at what the score rewards.
--
--   syllabus sql out/quickstart fixtures/lake -f sql/top_and_bottom.sql
SELECT * FROM (
    (SELECT 'top' AS rank_end, s.id, round(s.dsir_logw, 2) AS logw,
            substr(regexp_replace(l.text, '\s+', ' ', 'g'), 1, 50) AS text
     FROM scores s JOIN lake l ON l.id = s.id
     ORDER BY s.dsir_logw DESC, s.id LIMIT 5)
    UNION ALL
    (SELECT 'bottom' AS rank_end, s.id, round(s.dsir_logw, 2) AS logw,
            substr(regexp_replace(l.text, '\s+', ' ', 'g'), 1, 50) AS text
     FROM scores s JOIN lake l ON l.id = s.id
     ORDER BY s.dsir_logw ASC, s.id LIMIT 5)
)
ORDER BY rank_end DESC, logw DESC, id;
