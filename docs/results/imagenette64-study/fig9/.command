tokcom --seed 0 --threads 0 --log-level info visualize --checkpoint runs/study-imagenette64/adaptive/model.safetensors --alphas 0.25,0.5,0.75 -o runs/study-imagenette64/fig9/fig9.png
