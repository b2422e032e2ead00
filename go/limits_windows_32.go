//go:build windows && (386 || arm)

package spawnisolated

// JOBOBJECT_BASIC_LIMIT_INFORMATION on 32-bit Windows: 44 bytes of fields, padded to 48 by C's
// 8-byte alignment of its LARGE_INTEGERs (Go aligns int64 to 4 here: the padding is explicit).
type basicLimits struct {
	PerProcessUserTimeLimit int64
	PerJobUserTimeLimit     int64
	LimitFlags              uint32
	MinimumWorkingSetSize   uintptr
	MaximumWorkingSetSize   uintptr
	ActiveProcessLimit      uint32
	Affinity                uintptr
	PriorityClass           uint32
	SchedulingClass         uint32
	_                       uint32
}

const (
	basicLimitsSize    = 48
	extendedLimitsSize = 112
)
