# Sourced by check_quant_export.sh and check_quantized.sh (after
# jobs/lib/common.sh, in the test's work directory):
#   export_quantized MODEL SHAPE CALIB [export options...]
# writes calib.h5, input.h5 (seeded random, seed 1), model.h5 (the int8 model)
# and reference.h5 (PyTorch's quantized model on input.h5, every layer).
# CALIB is images:K (the first K of models/images/*.png), fashion-mnist:K
# (the first K training images) or random:K.
export_quantized() {
  local model=$1 shape=$2 calib=$3
  shift 3
  local count=${calib#*:}
  case $calib in
    images:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --images "$SPLITINFER_ROOT/models/images" \
                --count "$count" --shape "$shape" --out calib.h5 ;;
    fashion-mnist:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --dataset fashion-mnist \
                       --count "$count" --shape "$shape" --out calib.h5 ;;
    random:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --random --seed 0 \
                --count "$count" --shape "$shape" --out calib.h5 ;;
    *) echo "export_quantized: unknown calibration '$calib' (images:K, fashion-mnist:K, random:K)" >&2
       return 2 ;;
  esac
  $PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 1 --out input.h5
  $PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" "$@" \
    --quantize qnnpack --calib calib.h5 --out model.h5 --reference reference.h5 --input-file input.h5
}
