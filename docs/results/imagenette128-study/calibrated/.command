tokcom --seed 0 --threads 1 --log-level info calibrate --checkpoint runs/study-imagenette128/adaptive/model.safetensors --images 1024 --budgets 0.01:0.99:0.02 -o runs/study-imagenette128/calibrated
