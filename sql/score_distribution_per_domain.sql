-- How target-like each domain is: the DSIR weight of every document of the lake, per domain.
-- The fixture ids carry the domain as a prefix (prose-00000); with your own data, group by
-- your domain column instead.
--
--   syllabus sql out/quickstart -f sql/score_distribution_per_domain.sql
SELECT split_part(id, '-', 1) AS domain,
       count(*) AS documents,
       round(min(dsir_logw), 2) AS min_logw,
       round(median(dsir_logw), 2) AS median_logw,
       round(max(dsir_logw), 2) AS max_logw,
       round(avg(n_words), 1) AS mean_words,
       sum(CASE WHEN n_words < 100 THEN 1 ELSE 0 END) AS too_short
FROM scores
GROUP BY 1
ORDER BY median_logw DESC;
