# Seconds per ALS iteration against interactions (bench/run-all, via generate.py).
# gnuplot -e "implicit='FILE'; explicit='FILE'; k=64; out='PNG'" training.gp
# FILE rows: interactions (millions), seconds per iteration.
set terminal pngcairo size 900,560 font "DejaVu Sans,11"
set output out
set termoption noenhanced
set title sprintf("One ALS iteration against data size (138K users x 27K items, K = %d)", k)
set xlabel "interactions (millions)"
set ylabel "seconds per iteration"
set xrange [0:*]
set yrange [0:*]
set grid
set key top left
plot explicit using 1:2 with linespoints lw 2 pt 7 title "explicit with biases (Cholesky)", \
     implicit using 1:2 with linespoints lw 2 pt 5 title "implicit (conjugate gradient)"
