tokcom --seed 0 --threads 0 --log-level info train --resume -c imagenette64 train.stage=backbone train.out=runs/study-imagenette64/backbone train.epochs=12
