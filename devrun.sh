set -u
mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/raysite.tar.xz
export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1 PLAYGROUND_CACHE=/tmp/pgcache
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt 2>&1
step() { name=$1; t=$2; shift 2; mkdir -p $OUT/$name; s=$(date +%s); timeout $t "$@" > $OUT/$name/log.txt 2>&1; echo "$name rc=$? $(( $(date +%s)-s ))s" | tee -a $OUT/steps.txt; }
step realtime 175 python -m bench.realtime --model resnet50 --precision bf16 --num-gpus 1 --seconds 5 --runs 6 --out $OUT/realtime
step hwcuda 160 python -m bench.run_bench --model resnet50 --precision bf16 --batch-size 256 --images 60000 --jpeg-images 30000 --object-store-limit-mb 4096 --cases ceiling,real_jpeg --gpu-decoder nvimgcodec-hw+cuda --out $OUT/hwcuda
step nvimg 105 python -m bench.run_bench --model resnet50 --precision bf16 --batch-size 256 --images 60000 --jpeg-images 30000 --object-store-limit-mb 4096 --cases real_jpeg --gpu-decoder nvimgcodec --out $OUT/nvimg
step hwcpu 100 python -m bench.run_bench --model resnet50 --precision bf16 --batch-size 256 --images 60000 --jpeg-images 30000 --object-store-limit-mb 4096 --cases real_jpeg --gpu-decoder nvimgcodec-hw+cpu --out $OUT/hwcpu
