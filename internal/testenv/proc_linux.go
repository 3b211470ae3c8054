package testenv

import "syscall"

// procAttr makes the kernel kill redis-server if the test binary dies
// without running its TestMain cleanup (e.g. a -timeout panic).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
