/* Splitting a kernel's work over threads (included by the C kernels).
 *
 * irnn_parallel(n_threads, n_units, fn, arg) calls fn(arg, begin, end) on contiguous ranges
 * of [0, n_units) that cover it once, one range per thread (at most n_units threads; the
 * calling thread takes the first range), and returns when all are done. The kernels make
 * their results independent of the thread count by choosing work units whose results do not
 * depend on which thread computes them (blocks of batch rows, rows of dW) and by summing
 * per-unit partials in a fixed order afterwards.
 *
 * x86 keeps flush-to-zero / denormals-are-zero per thread (MXCSR): each worker copies the
 * caller's mode, so every thread rounds alike. If a thread cannot be started its range runs
 * on the caller: the result is the same, only slower. Threads are started per call: ~20 us
 * each, against milliseconds of work per call.
 */
#ifndef IRNN_THREADS_H
#define IRNN_THREADS_H

#include <pthread.h>

#ifndef IRNN_MAX_THREADS
#define IRNN_MAX_THREADS 256
#endif

typedef void (*irnn_task_fn)(void *arg, Py_ssize_t begin, Py_ssize_t end);

typedef struct {
    irnn_task_fn fn;
    void *arg;
    Py_ssize_t begin, end;
#ifdef IRNN_HAVE_MXCSR
    unsigned int csr;
#endif
} irnn_range_task;

static void *irnn_range_worker(void *p) {
    irnn_range_task *task = (irnn_range_task *)p;
#ifdef IRNN_HAVE_MXCSR
    _mm_setcsr(task->csr);
#endif
    task->fn(task->arg, task->begin, task->end);
    return NULL;
}

static void irnn_parallel(int n_threads, Py_ssize_t n_units, irnn_task_fn fn, void *arg) {
    if (n_units <= 0) return;
    if (n_threads > n_units) n_threads = (int)n_units;
    if (n_threads > IRNN_MAX_THREADS) n_threads = IRNN_MAX_THREADS;
    if (n_threads <= 1) {
        fn(arg, 0, n_units);
        return;
    }
    irnn_range_task tasks[IRNN_MAX_THREADS];
    pthread_t tids[IRNN_MAX_THREADS];
    int started[IRNN_MAX_THREADS];
    for (int i = 0; i < n_threads; i++) {
        tasks[i].fn = fn;
        tasks[i].arg = arg;
        tasks[i].begin = n_units * i / n_threads;
        tasks[i].end = n_units * (i + 1) / n_threads;
#ifdef IRNN_HAVE_MXCSR
        tasks[i].csr = _mm_getcsr();
#endif
    }
    for (int i = 1; i < n_threads; i++)
        started[i] = pthread_create(&tids[i], NULL, irnn_range_worker, &tasks[i]) == 0;
    fn(arg, tasks[0].begin, tasks[0].end);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            fn(arg, tasks[i].begin, tasks[i].end);
    }
}

#endif
