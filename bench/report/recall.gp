# Recall@10 against query latency for HNSW efSearch settings, exact search as one point
# (bench/run-all, via generate.py). gnuplot -e "hnsw='FILE'; exact='FILE'; out='PNG'" recall.gp;
# rows: p50_us recall ef p99_us.
set terminal pngcairo size 900,560 font "DejaVu Sans,11"
set output out
set termoption noenhanced
set title "Item index: recall@10 against latency (one query, one thread)"
set xlabel "p50 latency per query (µs, log scale)"
set ylabel "recall@10"
set logscale x
set format x "%g"
set xtics (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
set grid
set key bottom right
set autoscale fix
set offsets graph 0.05, graph 0.1, graph 0.08, graph 0.05
plot hnsw using 1:2 with linespoints lw 2 pt 7 title "HNSW (labels: efSearch)", \
     hnsw using 1:2:(sprintf("%d", $3)) with labels offset char 0,1 notitle, \
     exact using 1:2 with points pt 5 ps 2 title "exact"
