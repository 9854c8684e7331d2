# Sourced by every bench script: prints the machine its figures come from (CPU model, family and model numbers, the
# vector and matrix instructions ONNX Runtime's kernels use, cores, memory, GPU), so that a figure is never set
# beside one measured on another CPU. The targets are ratios within one run; absolute times only compare on the
# same kind of machine.
nsod_machine_line() {
	local cpuinfo=${NSOD_CPUINFO:-/proc/cpuinfo} name family model flags isa="" pair gpu mem
	name=$(awk -F': *' '/^model name/ { print $2; exit }' "$cpuinfo")
	family=$(awk -F': *' '/^cpu family/ { print $2; exit }' "$cpuinfo")
	model=$(awk -F': *' '/^model[ \t]*:/ { print $2; exit }' "$cpuinfo")
	flags=" $(awk -F': *' '/^(flags|Features)/ { print $2; exit }' "$cpuinfo") "
	for pair in avx2:AVX2 avx512f:AVX-512F avx512_vnni:AVX-512_VNNI avx512_bf16:AVX-512_BF16 avx_vnni:AVX-VNNI \
		amx_int8:AMX-INT8 amx_bf16:AMX-BF16 asimd:NEON sve:SVE; do
		case "$flags" in *" ${pair%%:*} "*) isa="$isa${isa:+, }${pair#*:}" ;; esac
	done
	mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
	gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | paste -sd, - || true)
	echo "machine: ${name:-unknown CPU} (family ${family:-?}, model ${model:-?}), $(nproc) CPUs, ${isa:-none of AVX2, AVX-512, AMX, NEON}," \
		"${mem:-? GiB}, GPU: ${gpu:-none}"
}
nsod_machine_line
