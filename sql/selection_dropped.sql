-- What the selection dropped: per domain, how many documents were kept, and the dropped
-- documents that came closest (the highest weights left out), with the start of their text.
--
--   syllabus sql out/quickstart fixtures/lake -f sql/selection_dropped.sql
SELECT split_part(s.id, '-', 1) AS domain,
       count(*) AS documents,
       count(sel.id) AS selected,
       count(*) - count(sel.id) AS dropped,
       round(100.0 * count(sel.id) / count(*), 1) AS kept_pct
FROM scores s
LEFT JOIN selected sel ON s.id = sel.id
GROUP BY 1
ORDER BY 1;

SELECT s.id,
       round(s.dsir_logw, 2) AS logw,
       s.n_words,
       substr(regexp_replace(l.text, '\s+', ' ', 'g'), 1, 50) AS text
FROM scores s
JOIN lake l ON l.id = s.id
LEFT ANTI JOIN selected sel ON s.id = sel.id
WHERE s.n_words >= 100
ORDER BY s.dsir_logw DESC, s.id
LIMIT 5;
