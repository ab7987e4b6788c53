# HTTP latency percentiles against concurrency (bench/run-all, via generate.py).
# gnuplot -e "data='FILE'; out='PNG'" latency.gp; FILE rows: concurrency p50 p90 p99 nginx_p99 (ms).
set terminal pngcairo size 900,560 font "DejaVu Sans,11"
set output out
set termoption noenhanced
set title "recloop serve: recommendation latency against concurrency (wrk, 2 cores)"
set xlabel "concurrent connections"
set ylabel "latency (ms)"
set logscale xy 2
set xtics (1, 2, 4, 8, 16, 32, 64)
set xrange [0.8:80]
set format y "%g"
set grid
set key top left
plot data using 1:2 with linespoints lw 2 pt 7 title "recloop p50", \
     data using 1:3 with linespoints lw 2 pt 5 title "recloop p90", \
     data using 1:4 with linespoints lw 2 pt 9 title "recloop p99", \
     data using 1:5 with linespoints lw 1 dt 2 pt 6 lc rgb "gray40" \
          title "nginx static p99 (ceiling)"
