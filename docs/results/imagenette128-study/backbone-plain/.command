tokcom --seed 0 --threads 1 --log-level info train --resume -c imagenette128 train.stage=backbone train.out=runs/study-imagenette128/backbone train.epochs=12
