package worker

// PluginPID returns the process id of the plugin of a job attempt, or 0 if
// the worker runs none.
func (w *Worker) PluginPID(jobID string, attempt uint64) int {
	w.jobsMu.Lock()
	jr := w.jobs[jobKey{id: jobID, attempt: attempt}]
	w.jobsMu.Unlock()
	if jr == nil {
		return 0
	}
	select {
	case <-jr.ready:
	default:
		return 0
	}
	if jr.err != nil {
		return 0
	}
	return jr.pid
}

// PluginCount returns how many plugin processes the worker runs or starts.
func (w *Worker) PluginCount() int {
	w.jobsMu.Lock()
	defer w.jobsMu.Unlock()
	return len(w.jobs)
}

// EnvStateDir is the variable the worker sets for its plugins.
const EnvStateDir = envStateDir
