-- The largest duplicate clusters a [dedup] stage removed: per cluster, its rows, how many are
-- exact copies of an earlier row, how many domains it spans, and the start of the kept row.
--
--   syllabus sql out/clean fixtures/lake -f sql/duplicates.sql
SELECT d.dup_cluster AS cluster,
       count(*) AS rows,
       sum(CASE WHEN d.dup_exact <> d.id THEN 1 ELSE 0 END) AS exact_copies,
       count(DISTINCT split_part(d.id, '-', 1)) AS domains,
       replace(left(min(l.text), 60), chr(10), ' ') AS kept_text
FROM dedup d
JOIN lake l ON l.id = d.dup_cluster
GROUP BY d.dup_cluster
HAVING count(*) > 1
ORDER BY rows DESC, cluster
LIMIT 10
