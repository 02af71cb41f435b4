-- What each k-means cluster of a [clusters] stage holds, to name it: its size, how many of
-- its rows the balanced selection kept, the lake's domains (file prefixes) it draws from, and
-- its top terms.
--
--   syllabus sql out/clusters -f sql/clusters.sql
SELECT t.cluster,
       t.size,
       count(s.id) AS selected,
       (SELECT count(DISTINCT split_part(c.id, '-', 1)) FROM clusters c WHERE c.cluster = t.cluster) AS domains,
       t.top_terms
FROM cluster_terms t
LEFT JOIN clusters c ON c.cluster = t.cluster
LEFT JOIN selected s ON s.id = c.id
GROUP BY t.cluster, t.size, t.top_terms
ORDER BY t.cluster
