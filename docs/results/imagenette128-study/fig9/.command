tokcom --seed 0 --threads 1 --log-level info visualize --checkpoint runs/study-imagenette128/adaptive/model.safetensors --alphas 0.25,0.5,0.75 -o runs/study-imagenette128/fig9/fig9.png
