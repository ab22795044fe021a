/*
 * Power-loss shim for the power-loss test (test/power-loss.test.ts), loaded with LD_PRELOAD into one
 * `dip serve` process. A SIGKILL leaves the kernel's page cache intact, so everything the process wrote
 * reaches the disk whether or not it was synced; a power cut does not. This library stands in for the
 * page cache of the files it watches: every write to them stays in its own memory, and only an
 * fsync/fdatasync (or sync/syncfs) on that file writes it to the real file (and syncs it). Kill the
 * process and the real files hold exactly what was synced: what a disk holds after the power goes.
 *
 * Watched files: regular files whose path starts with $POWERLOSS_PREFIX (e.g. <dataDir>/dip.db, so
 * dip.db, dip.db-wal and dip.db-journal), except the `-shm` file. SQLite mmaps its WAL index (-shm)
 * and never expects it to survive a crash: the first connection after one takes the exclusive
 * "DMS" lock, truncates the -shm and rebuilds it from the WAL, so it is left to the real page cache.
 *
 * State is per file (device, inode), not per descriptor: the store syncs the WAL through its own
 * read-only descriptor (fs.fdatasync on Node's thread pool) while SQLite writes it through another,
 * and a sync of any descriptor makes every write to that file durable, as in the kernel. Reads
 * (pread/read/readv/preadv), sizes (fstat/stat/lstat, lseek SEEK_END) and truncation see the buffered
 * writes, so the process itself notices nothing.
 *
 * Entry points: what `nm -D --undefined-only` lists for better_sqlite3.node (open64, pread64, pwrite64,
 * read, write, ftruncate64, fstat64, stat64, lstat64, fsync, unlink, mmap64) and for node itself
 * (open64, pread64/pwrite64, preadv64/pwritev64, read/readv, write/writev, lseek64, ftruncate64,
 * fdatasync, fsync, __fxstat64/__xstat64, dup2/dup3, unlink), plus their plain and 64-bit twins.
 * Not interposed (nothing here uses them on these files): fcntl(F_DUPFD), fallocate, copy_file_range,
 * sendfile, truncate(path), io_uring (UV_USE_IO_URING=0 in the test keeps libuv on plain syscalls),
 * and statx (libuv calls it as a raw syscall; the DIP never stats its database through Node). A
 * shared or read mapping of a watched file would bypass the overlay, so mmap of one aborts loudly.
 *
 * Options (environment):
 *   POWERLOSS_PREFIX          path prefix of the watched files (nothing is watched without it)
 *   POWERLOSS_LOG             file to append one line per sync of a watched file: "sync <path>" when
 *                             honoured, "drop <path>" when dropped (see below)
 *   POWERLOSS_DROP_STORE_WAL_SYNCS=1  negative control: drop every fdatasync of a -wal file: the store's
 *                             group-commit sync (fs.fdatasync, on libuv's pool), while SQLite's own
 *                             syncs (checkpoints, with fsync, on the writer's or the checkpoint
 *                             thread) are honoured. The store is unchanged; only its disk lies to it.
 *   POWERLOSS_WRITEBACK_PERCENT=N     each written page also reaches the real file at once (without a
 *                             sync) with this probability: the kernel may write back any part of the
 *                             unsynced data before the power goes, so the files after the cut are the
 *                             synced state plus an arbitrary subset of later pages.
 *   POWERLOSS_SEED            seed for that choice (default 1).
 *
 * Not simulated: torn writes inside a 4 KiB page, reordering of directory entries (a created, renamed
 * or unlinked name is real at once), and device write caches that ignore a flush.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The 64-bit entry points (open64, pread64, fstat64, ...) forward to the plain ones: the same types on LP64. */
_Static_assert(sizeof(off_t) == 8 && sizeof(struct stat) == sizeof(struct stat64), "the power-loss shim is for 64-bit Linux");

#define PAGE 4096
#define MAX_FDS 65536

typedef struct watched {
  dev_t dev;
  ino_t ino;
  char *path;
  int fd;          /* the shim's own read-write descriptor on the real file */
  off_t size;      /* the file's size as the process sees it */
  off_t valid;     /* bytes of the real file the process may still see; beyond: zeros (a pending truncation) */
  int truncated;   /* a truncation below the real size is pending */
  int is_wal;
  unsigned char **pages; /* buffered pages by index; NULL: as in the real file */
  size_t npages;
  struct watched *next;
} watched;

static struct { watched *w; int flags; } fds[MAX_FDS];
static watched *all;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *prefix;
static size_t prefix_len;
static int log_fd = -1;
static int drop_store_wal_syncs;
static unsigned writeback_percent;
static uint64_t rng = 1;

#define REAL(ret, name, args) \
  static ret(*real_##name) args; \
  static ret(*get_##name(void)) args { \
    if (!real_##name) real_##name = (ret(*) args)dlsym(RTLD_NEXT, #name); \
    return real_##name; \
  }

REAL(int, open, (const char *, int, ...))
REAL(int, openat, (int, const char *, int, ...))
REAL(int, close, (int))
REAL(ssize_t, pread, (int, void *, size_t, off_t))
REAL(ssize_t, pwrite, (int, const void *, size_t, off_t))
REAL(ssize_t, read, (int, void *, size_t))
REAL(ssize_t, write, (int, const void *, size_t))
REAL(ssize_t, readv, (int, const struct iovec *, int))
REAL(ssize_t, writev, (int, const struct iovec *, int))
REAL(ssize_t, preadv, (int, const struct iovec *, int, off_t))
REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t))
REAL(off_t, lseek, (int, off_t, int))
REAL(int, ftruncate, (int, off_t))
REAL(int, fstat, (int, struct stat *))
REAL(int, stat, (const char *, struct stat *))
REAL(int, lstat, (const char *, struct stat *))
REAL(int, fstatat, (int, const char *, struct stat *, int))
REAL(int, fsync, (int))
REAL(int, fdatasync, (int))
REAL(int, syncfs, (int))
REAL(void, sync, (void))
REAL(int, dup, (int))
REAL(int, dup2, (int, int))
REAL(int, dup3, (int, int, int))
REAL(int, unlink, (const char *))
REAL(int, unlinkat, (int, const char *, int))
REAL(int, remove, (const char *))
REAL(void *, mmap, (void *, size_t, int, int, int, off_t))

static void die(const char *what, const char *path) {
  char msg[1024];
  int n = snprintf(msg, sizeof msg, "power-loss shim: %s%s%s\n", what, path ? ": " : "", path ? path : "");
  get_write()(2, msg, (size_t)n);
  abort();
}

__attribute__((constructor)) static void init(void) {
  prefix = getenv("POWERLOSS_PREFIX");
  prefix_len = prefix ? strlen(prefix) : 0;
  if (prefix_len == 0) prefix = NULL;
  const char *log = getenv("POWERLOSS_LOG");
  if (log && *log) log_fd = get_open()(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  const char *d = getenv("POWERLOSS_DROP_STORE_WAL_SYNCS");
  drop_store_wal_syncs = d && strcmp(d, "1") == 0;
  const char *p = getenv("POWERLOSS_WRITEBACK_PERCENT");
  writeback_percent = p ? (unsigned)atoi(p) : 0;
  const char *s = getenv("POWERLOSS_SEED");
  rng = s ? strtoull(s, NULL, 10) | 1 : 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * Only absolute paths are matched: SQLite and the store both open the database by its full path. Not the
 * -shm (a shared mapping), nor the WAL guard's boot mark (-boot: written with O_TRUNC by a path the overlay
 * does not model, and a restart under this shim is in the same boot, so the mark only says so).
 */
static int matches(const char *path) {
  return prefix && path && strncmp(path, prefix, prefix_len) == 0 && !ends_with(path, "-shm") && !ends_with(path, "-boot");
}

static void note(const char *verb, const watched *w) {
  if (log_fd < 0) return;
  char line[1200];
  int n = snprintf(line, sizeof line, "%s %s\n", verb, w->path);
  if (n > 0) get_write()(log_fd, line, (size_t)n);
}

static watched *tracked(int fd) {
  return fd >= 0 && fd < MAX_FDS ? fds[fd].w : NULL;
}

static watched *by_inode(dev_t dev, ino_t ino) {
  for (watched *w = all; w; w = w->next)
    if (w->dev == dev && w->ino == ino) return w;
  return NULL;
}

/* ---- the overlay (call with the lock held) ---- */

static int ensure_pages(watched *w, size_t n) {
  if (n <= w->npages) return 0;
  size_t cap = w->npages ? w->npages : 64;
  while (cap < n) cap *= 2;
  unsigned char **p = realloc(w->pages, cap * sizeof *p);
  if (!p) return -1;
  memset(p + w->npages, 0, (cap - w->npages) * sizeof *p);
  w->pages = p;
  w->npages = cap;
  return 0;
}

/* Reads [off, off+len) of the real file as the process may see it: zeros past `valid`. */
static int read_real(watched *w, unsigned char *dst, size_t len, off_t off) {
  size_t done = 0;
  while (done < len && off + (off_t)done < w->valid) {
    size_t want = len - done;
    if (off + (off_t)(done + want) > w->valid) want = (size_t)(w->valid - off - (off_t)done);
    ssize_t n = get_pread()(w->fd, dst + done, want, off + (off_t)done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  memset(dst + done, 0, len - done);
  return 0;
}

static int write_real(int fd, const unsigned char *src, size_t len, off_t off) {
  while (len > 0) {
    ssize_t n = get_pwrite()(fd, src, len, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    src += n;
    len -= (size_t)n;
    off += n;
  }
  return 0;
}

static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static ssize_t overlay_write(watched *w, const void *buf, size_t len, off_t off) {
  if (len == 0) return 0;
  size_t last = (size_t)((off + (off_t)len - 1) / PAGE);
  if (ensure_pages(w, last + 1) < 0) return errno = ENOMEM, -1;
  const unsigned char *src = buf;
  size_t done = 0;
  while (done < len) {
    off_t pos = off + (off_t)done;
    size_t i = (size_t)(pos / PAGE), in = (size_t)(pos % PAGE);
    size_t n = PAGE - in < len - done ? PAGE - in : len - done;
    if (!w->pages[i]) {
      unsigned char *p = malloc(PAGE);
      if (!p) return errno = ENOMEM, -1;
      // A partial page starts as the file has it; a whole page is overwritten anyway.
      if (n < PAGE && read_real(w, p, PAGE, (off_t)i * PAGE) < 0) return free(p), -1;
      w->pages[i] = p;
    }
    memcpy(w->pages[i] + in, src + done, n);
    done += n;
  }
  if (off + (off_t)len > w->size) w->size = off + (off_t)len;
  if (writeback_percent > 0 && !w->truncated) {
    // Early writeback of some pages: they reach the real file now, and stay buffered (the overlay is
    // still what the process reads, and what a sync will write).
    for (size_t i = (size_t)(off / PAGE); i <= last; i++) {
      if (next_random() % 100 >= writeback_percent) continue;
      off_t at = (off_t)i * PAGE;
      size_t n = w->size - at < PAGE ? (size_t)(w->size - at) : PAGE;
      if (write_real(w->fd, w->pages[i], n, at) < 0) return -1;
    }
  }
  return (ssize_t)len;
}

static ssize_t overlay_read(watched *w, void *buf, size_t len, off_t off) {
  if (off >= w->size) return 0;
  if ((off_t)len > w->size - off) len = (size_t)(w->size - off);
  unsigned char *dst = buf;
  size_t done = 0;
  while (done < len) {
    off_t pos = off + (off_t)done;
    size_t i = (size_t)(pos / PAGE), in = (size_t)(pos % PAGE);
    size_t n = PAGE - in < len - done ? PAGE - in : len - done;
    if (i < w->npages && w->pages[i]) memcpy(dst + done, w->pages[i] + in, n);
    else if (read_real(w, dst + done, n, pos) < 0) return -1;
    done += n;
  }
  return (ssize_t)len;
}

static void overlay_truncate(watched *w, off_t len) {
  if (len < w->size) {
    size_t first_gone = (size_t)((len + PAGE - 1) / PAGE);
    for (size_t i = first_gone; i < w->npages; i++) free(w->pages[i]), w->pages[i] = NULL;
    if (len % PAGE && (size_t)(len / PAGE) < w->npages && w->pages[len / PAGE])
      memset(w->pages[len / PAGE] + len % PAGE, 0, PAGE - (size_t)(len % PAGE));
    if (len < w->valid) w->valid = len, w->truncated = 1;
  }
  w->size = len;
}

/* Writes everything buffered to the real file (not yet synced): the kernel's page cache after this. */
static int overlay_flush(watched *w) {
  if (w->truncated && get_ftruncate()(w->fd, w->valid) < 0) return -1;
  for (size_t i = 0; i < w->npages; i++) {
    if (!w->pages[i]) continue;
    off_t at = (off_t)i * PAGE;
    if (at < w->size) {
      size_t n = w->size - at < PAGE ? (size_t)(w->size - at) : PAGE;
      if (write_real(w->fd, w->pages[i], n, at) < 0) return -1;
    }
    free(w->pages[i]);
    w->pages[i] = NULL;
  }
  struct stat st;
  if (get_fstat()(w->fd, &st) < 0) return -1;
  if (st.st_size != w->size && get_ftruncate()(w->fd, w->size) < 0) return -1;
  w->valid = w->size;
  w->truncated = 0;
  return 0;
}

static void forget(watched *w) {
  for (watched **p = &all; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  for (int fd = 0; fd < MAX_FDS; fd++)
    if (fds[fd].w == w) fds[fd].w = NULL;
  for (size_t i = 0; i < w->npages; i++) free(w->pages[i]);
  free(w->pages);
  get_close()(w->fd);
  free(w->path);
  free(w);
}

/* ---- opening and closing ---- */

static int wants_mode(int flags) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

static int after_open(int fd, const char *path, int flags) {
  if (fd < 0 || !matches(path)) return fd;
  struct stat st;
  if (get_fstat()(fd, &st) < 0 || !S_ISREG(st.st_mode)) return fd;
  if (fd >= MAX_FDS) die("descriptor beyond the shim's table", path);
  pthread_mutex_lock(&lock);
  watched *w = by_inode(st.st_dev, st.st_ino);
  if (!w) {
    w = calloc(1, sizeof *w);
    if (!w) die("out of memory", path);
    w->fd = get_open()(path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0) die("cannot open the file read-write for itself", path);
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->path = strdup(path);
    w->size = w->valid = st.st_size;
    w->is_wal = ends_with(path, "-wal");
    w->next = all;
    all = w;
  }
  fds[fd].w = w;
  fds[fd].flags = flags;
  if (flags & O_TRUNC) overlay_truncate(w, 0);
  pthread_mutex_unlock(&lock);
  return fd;
}

/* open's third argument, there only when the flags create a file (GNU statement expression: gcc, clang). */
#define OPTIONAL_MODE(flags)        \
  ({                                \
    mode_t m_ = 0;                  \
    if (wants_mode(flags)) {        \
      va_list ap;                   \
      va_start(ap, flags);          \
      m_ = va_arg(ap, mode_t);      \
      va_end(ap);                   \
    }                               \
    m_;                             \
  })

/* O_TRUNC on a watched file is buffered like any truncation. */
static int open_flags(const char *path, int flags) {
  return matches(path) ? flags & ~O_TRUNC : flags;
}

int open(const char *path, int flags, ...) {
  mode_t mode = OPTIONAL_MODE(flags);
  return after_open(get_open()(path, open_flags(path, flags), mode), path, flags);
}
int open64(const char *path, int flags, ...) {
  mode_t mode = OPTIONAL_MODE(flags);
  return open(path, flags, mode);
}
int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int creat(const char *path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return creat(path, mode); }

int openat(int dirfd, const char *path, int flags, ...) {
  mode_t mode = OPTIONAL_MODE(flags);
  return after_open(get_openat()(dirfd, path, open_flags(path, flags), mode), path, flags);
}
int openat64(int dirfd, const char *path, int flags, ...) {
  mode_t mode = OPTIONAL_MODE(flags);
  return openat(dirfd, path, flags, mode);
}
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

int close(int fd) {
  if (tracked(fd)) {
    // No sync here, as in the kernel: what was not synced stays only in the (simulated) page cache.
    pthread_mutex_lock(&lock);
    fds[fd].w = NULL;
    pthread_mutex_unlock(&lock);
  }
  return get_close()(fd);
}

static int after_dup(int oldfd, int newfd) {
  if (newfd < 0 || newfd >= MAX_FDS) return newfd;
  pthread_mutex_lock(&lock);
  fds[newfd].w = tracked(oldfd);
  fds[newfd].flags = fds[newfd].w ? fds[oldfd].flags : 0;
  pthread_mutex_unlock(&lock);
  return newfd;
}
int dup(int fd) { return after_dup(fd, get_dup()(fd)); }
int dup2(int fd, int to) { return after_dup(fd, get_dup2()(fd, to)); }
int dup3(int fd, int to, int flags) { return after_dup(fd, get_dup3()(fd, to, flags)); }

static void after_unlink(const struct stat *before, int rc) {
  if (rc != 0) return;
  pthread_mutex_lock(&lock);
  watched *w = by_inode(before->st_dev, before->st_ino);
  if (w) forget(w); // the name is gone (SQLite deletes its WAL on a clean close): so is its page cache
  pthread_mutex_unlock(&lock);
}
int unlink(const char *path) {
  struct stat st;
  if (!matches(path) || get_lstat()(path, &st) < 0) return get_unlink()(path);
  int rc = get_unlink()(path);
  after_unlink(&st, rc);
  return rc;
}
int remove(const char *path) {
  struct stat st;
  if (!matches(path) || get_lstat()(path, &st) < 0) return get_remove()(path);
  int rc = get_remove()(path);
  after_unlink(&st, rc);
  return rc;
}
int unlinkat(int dirfd, const char *path, int flags) {
  struct stat st;
  if (!matches(path) || get_lstat()(path, &st) < 0) return get_unlinkat()(dirfd, path, flags);
  int rc = get_unlinkat()(dirfd, path, flags);
  after_unlink(&st, rc);
  return rc;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  watched *w = tracked(fd);
  if (w) die("mmap of a watched file would bypass the shim", w->path);
  return get_mmap()(addr, len, prot, flags, fd, off);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) { return mmap(addr, len, prot, flags, fd, off); }

/* ---- reads and writes ---- */

static int writable(int fd) {
  int mode = fds[fd].flags & O_ACCMODE;
  return mode == O_WRONLY || mode == O_RDWR;
}
static int readable(int fd) {
  return (fds[fd].flags & O_ACCMODE) != O_WRONLY;
}

static ssize_t vector_io(watched *w, const struct iovec *iov, int n, off_t off, int is_write) {
  ssize_t total = 0;
  for (int i = 0; i < n; i++) {
    ssize_t r = is_write ? overlay_write(w, iov[i].iov_base, iov[i].iov_len, off + total)
                         : overlay_read(w, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r < 0) return total > 0 ? total : -1;
    total += r;
    if ((size_t)r < iov[i].iov_len) break;
  }
  return total;
}

static ssize_t at_offset(int fd, watched *w, const struct iovec *iov, int n, off_t off, int is_write) {
  if (is_write ? !writable(fd) : !readable(fd)) return errno = EBADF, -1;
  pthread_mutex_lock(&lock);
  ssize_t r = vector_io(w, iov, n, off, is_write);
  pthread_mutex_unlock(&lock);
  return r;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
  watched *w = tracked(fd);
  struct iovec v = {(void *)buf, len};
  return w ? at_offset(fd, w, &v, 1, off, 1) : get_pwrite()(fd, buf, len, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off) { return pwrite(fd, buf, len, off); }
ssize_t pread(int fd, void *buf, size_t len, off_t off) {
  watched *w = tracked(fd);
  struct iovec v = {buf, len};
  return w ? at_offset(fd, w, &v, 1, off, 0) : get_pread()(fd, buf, len, off);
}
ssize_t pread64(int fd, void *buf, size_t len, off64_t off) { return pread(fd, buf, len, off); }
ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off) {
  watched *w = tracked(fd);
  return w ? at_offset(fd, w, iov, n, off, 1) : get_pwritev()(fd, iov, n, off);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off) { return pwritev(fd, iov, n, off); }
ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off) {
  watched *w = tracked(fd);
  return w ? at_offset(fd, w, iov, n, off, 0) : get_preadv()(fd, iov, n, off);
}
ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off) { return preadv(fd, iov, n, off); }

/* read/write/readv/writev at the descriptor's offset, which the real descriptor keeps (lseek). */
static ssize_t positioned(int fd, watched *w, const struct iovec *iov, int n, int is_write) {
  if (is_write ? !writable(fd) : !readable(fd)) return errno = EBADF, -1;
  pthread_mutex_lock(&lock);
  off_t pos = is_write && (fds[fd].flags & O_APPEND) ? w->size : get_lseek()(fd, 0, SEEK_CUR);
  ssize_t r = pos < 0 ? -1 : vector_io(w, iov, n, pos, is_write);
  if (r > 0) get_lseek()(fd, pos + r, SEEK_SET);
  pthread_mutex_unlock(&lock);
  return r;
}

ssize_t write(int fd, const void *buf, size_t len) {
  watched *w = tracked(fd);
  if (!w) return get_write()(fd, buf, len);
  struct iovec v = {(void *)buf, len};
  return positioned(fd, w, &v, 1, 1);
}
ssize_t read(int fd, void *buf, size_t len) {
  watched *w = tracked(fd);
  if (!w) return get_read()(fd, buf, len);
  struct iovec v = {buf, len};
  return positioned(fd, w, &v, 1, 0);
}
ssize_t writev(int fd, const struct iovec *iov, int n) {
  watched *w = tracked(fd);
  return w ? positioned(fd, w, iov, n, 1) : get_writev()(fd, iov, n);
}
ssize_t readv(int fd, const struct iovec *iov, int n) {
  watched *w = tracked(fd);
  return w ? positioned(fd, w, iov, n, 0) : get_readv()(fd, iov, n);
}

off_t lseek(int fd, off_t off, int whence) {
  watched *w = tracked(fd);
  if (!w || whence != SEEK_END) return get_lseek()(fd, off, whence);
  pthread_mutex_lock(&lock);
  off_t r = get_lseek()(fd, w->size + off, SEEK_SET);
  pthread_mutex_unlock(&lock);
  return r;
}
off64_t lseek64(int fd, off64_t off, int whence) { return lseek(fd, off, whence); }

int ftruncate(int fd, off_t len) {
  watched *w = tracked(fd);
  if (!w) return get_ftruncate()(fd, len);
  if (!writable(fd)) return errno = EINVAL, -1;
  if (len < 0) return errno = EINVAL, -1;
  pthread_mutex_lock(&lock);
  overlay_truncate(w, len);
  pthread_mutex_unlock(&lock);
  return 0;
}
int ftruncate64(int fd, off64_t len) { return ftruncate(fd, len); }

/* ---- sizes ---- */

static void patch_size(struct stat *st) {
  pthread_mutex_lock(&lock);
  watched *w = by_inode(st->st_dev, st->st_ino);
  if (w && S_ISREG(st->st_mode)) {
    st->st_size = w->size;
    st->st_blocks = (w->size + 511) / 512;
  }
  pthread_mutex_unlock(&lock);
}

int fstat(int fd, struct stat *st) {
  int rc = get_fstat()(fd, st);
  if (rc == 0 && tracked(fd)) patch_size(st);
  return rc;
}
int fstat64(int fd, struct stat64 *st) { return fstat(fd, (struct stat *)st); }
int stat(const char *path, struct stat *st) {
  int rc = get_stat()(path, st);
  if (rc == 0 && matches(path)) patch_size(st);
  return rc;
}
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }
int lstat(const char *path, struct stat *st) {
  int rc = get_lstat()(path, st);
  if (rc == 0 && matches(path)) patch_size(st);
  return rc;
}
int lstat64(const char *path, struct stat64 *st) { return lstat(path, (struct stat *)st); }
int fstatat(int dirfd, const char *path, struct stat *st, int flags) {
  int rc = get_fstatat()(dirfd, path, st, flags);
  if (rc == 0 && (matches(path) || ((flags & AT_EMPTY_PATH) && path[0] == '\0' && tracked(dirfd)))) patch_size(st);
  return rc;
}
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags) { return fstatat(dirfd, path, (struct stat *)st, flags); }
/* Binaries built against glibc < 2.33 (node's release build) call these; the layout is fstat's here. */
int __fxstat64(int ver, int fd, struct stat *st) { (void)ver; return fstat(fd, st); }
int __fxstat(int ver, int fd, struct stat *st) { (void)ver; return fstat(fd, st); }
int __xstat64(int ver, const char *path, struct stat *st) { (void)ver; return stat(path, st); }
int __xstat(int ver, const char *path, struct stat *st) { (void)ver; return stat(path, st); }
int __lxstat64(int ver, const char *path, struct stat *st) { (void)ver; return lstat(path, st); }
int __lxstat(int ver, const char *path, struct stat *st) { (void)ver; return lstat(path, st); }

/* ---- syncs: the only way buffered writes reach the real file ---- */

static int still_watched(const watched *w) {
  for (watched *v = all; v; v = v->next)
    if (v == w) return 1;
  return 0;
}

static int sync_watched(watched *w, int (*real)(int), int is_fdatasync) {
  pthread_mutex_lock(&lock);
  if (drop_store_wal_syncs && w->is_wal && is_fdatasync) {
    note("drop", w);
    pthread_mutex_unlock(&lock);
    return 0;
  }
  int rc = overlay_flush(w);
  int own = w->fd;
  pthread_mutex_unlock(&lock);
  // The real sync runs outside the lock, as the kernel lets writes continue during one; what was
  // written before this call is already in the real file.
  if (rc == 0) rc = real(own);
  pthread_mutex_lock(&lock);
  if (rc == 0 && still_watched(w)) note("sync", w);
  pthread_mutex_unlock(&lock);
  return rc;
}

int fsync(int fd) {
  watched *w = tracked(fd);
  return w ? sync_watched(w, get_fsync(), 0) : get_fsync()(fd);
}
int fdatasync(int fd) {
  watched *w = tracked(fd);
  return w ? sync_watched(w, get_fdatasync(), 1) : get_fdatasync()(fd);
}

/* sync_file_range promises no durability (no metadata, no device flush): it leaves the buffer alone. */
int sync_file_range(int fd, off_t off, off_t len, unsigned int flags) {
  if (tracked(fd)) return 0;
  return (int)syscall(SYS_sync_file_range, fd, off, len, flags);
}

static void flush_all(void) {
  pthread_mutex_lock(&lock);
  for (watched *w = all; w; w = w->next) overlay_flush(w);
  pthread_mutex_unlock(&lock);
}
void sync(void) {
  flush_all();
  get_sync()();
}
int syncfs(int fd) {
  flush_all();
  return get_syncfs()(fd);
}
