# Sourced by check_quantize.sh and check_fp16.sh (after jobs/lib/common.sh, in
# the test's work directory, where float_plan is the float model's one-node plan):
#   run_against_float PLAN NAME TOL INPUTS SHAPE
# makes INPUTS test inputs (fashion-test:K, the first K Fashion-MNIST test
# images, where the top-1 class must also agree; or random:K), runs each
# through float_plan and PLAN, and requires PLAN's outputs within TOL of the
# float ones (compare_to_float.py). Output files: float_output_K.h5, NAME_output_K.h5.
run_against_float() {
  local plan=$1 name=$2 tol=$3 inputs=$4 shape=$5
  local tests=$SPLITINFER_ROOT/tests/torch count=${inputs#*:} options=() pairs=()
  case $inputs in
    fashion-test:*) $PYTHON "$tests/split_inputs.py" --fashion-test "$count" --shape "$shape" test_input >/dev/null
                    options+=(--require-top1) ;;
    random:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --random --seed 1 --count "$count" \
                --shape "$shape" --out test_inputs.h5
              $PYTHON "$tests/split_inputs.py" --from test_inputs.h5 test_input >/dev/null ;;
    *) echo "run_against_float: unknown test inputs '$inputs'" >&2; return 2 ;;
  esac
  for ((k = 0; k < count; k++)); do
    splitinfer_mpirun 2 run float_plan --input "test_input_$k.h5" --output "float_output_$k.h5" >/dev/null
    splitinfer_mpirun 2 run "$plan" --input "test_input_$k.h5" --output "${name}_output_$k.h5" >/dev/null
    pairs+=("float_output_$k.h5" "${name}_output_$k.h5")
  done
  $PYTHON "$tests/compare_to_float.py" --tol "$tol" ${options[@]+"${options[@]}"} "${pairs[@]}"
}
