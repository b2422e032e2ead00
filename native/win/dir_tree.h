// Directory work that never follows a link: every object is opened by one name relative to an
// open directory handle, as the reparse point itself when it is one (FILE_OPEN_REPARSE_POINT),
// and what is checked is the handle that is then acted on, so no name can be swapped in
// between. ntdll's NtCreateFile / NtSetInformationFile (relative opens and renames have no
// Win32 form) are resolved at run time: no import library is needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

// What an opened object is, read from its handle.
struct NodeInfo {
  DWORD attributes = 0;
  bool directory = false;  // a directory that is not a reparse point
  bool reparse = false;    // a reparse point (junction, symbolic link, ...): the link itself is what is open
  DWORD links = 1;         // hard links to a file
};

// One directory entry as listed (not to be trusted: check the opened handle).
struct DirEntry {
  std::wstring name;
  DWORD attributes = 0;
};

// Access for a directory that is emptied and deleted through its handle.
constexpr DWORD kTreeAccess = DELETE | FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_ADD_FILE | FILE_ADD_SUBDIRECTORY | FILE_READ_ATTRIBUTES |
                              FILE_WRITE_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE;

// `name` (one component) relative to the directory `dir`; a reparse point is opened as itself.
// Shared read / write / delete. Invalid handle on failure, with the Win32 error in *err.
// `v` in lower-case hexadecimal (names of entries made here).
std::wstring Hex(uint64_t v);
UniqueHandle OpenRelative(HANDLE dir, const std::wstring& name, DWORD access, DWORD* err);
// The object `h` is open on, opened again with `access` (no name is looked up).
UniqueHandle ReopenSame(HANDLE h, DWORD access, DWORD* err);
// Creates the directory `name` in `dir` (never an existing one: ERROR_ALREADY_EXISTS).
UniqueHandle CreateDirRelative(HANDLE dir, const std::wstring& name, DWORD access, DWORD* err);
// A path whose last component is opened as itself (not followed) when it is a reparse point.
UniqueHandle OpenNoFollow(const std::wstring& path, DWORD access, DWORD* err);
bool Inspect(HANDLE h, NodeInfo* info);
// Renames what `h` is to `name` inside the directory `dir`, never replacing anything: 0 or a
// Win32 error (ERROR_ALREADY_EXISTS when the name is taken).
DWORD RenameInto(HANDLE h, HANDLE dir, const std::wstring& name);
// Deletes what `h` is (a file, an empty directory, or a link itself, never its target): POSIX
// semantics where the host has them, else the classic disposition, clearing a read-only
// attribute first unless the file has other hard links. 0 or a Win32 error.
DWORD DeleteByHandle(HANDLE h, const NodeInfo& info);
// The next entries of `dir` ("." and ".." left out), from its start when `restart`. False at
// the end of the listing, or on an error (*err set, else 0).
bool ListBatch(HANDLE dir, bool restart, std::vector<DirEntry>* out, DWORD* err);

// Removes a directory tree through handles only, a bounded amount of work at a time, without
// recursion and with at most four handles open: the root, the root opened again to list it
// (fresh for each pass over it: Wine's listing of a handle does not see later changes, even from
// its start), one directory of the root being emptied, and one entry. Files and links are
// deleted where they are found; a directory found inside a directory of the root is moved up
// into the root (renamed there), so nothing is ever deeper than two levels when it is reached,
// however deep the tree was.
class TreeRemover {
 public:
  enum Result { kDone, kMore, kStuck };
  // `root`: the directory itself (not a reparse point), opened with kTreeAccess.
  explicit TreeRemover(UniqueHandle root) : root_(std::move(root)) {}
  // Up to about `budget` operations. kStuck: a whole pass over the root removed nothing (an
  // entry still open elsewhere, or denied): try again later. kDone: the root is gone too.
  Result Step(int budget);
  DWORD lastError() const { return lastError_; }

 private:
  bool Visit(HANDLE parent, const DirEntry& e, bool hoist);
  bool Hoist(HANDLE h);

  UniqueHandle root_;
  UniqueHandle list_;  // the root, for this pass's listing
  UniqueHandle sub_;   // a directory of the root being emptied
  std::vector<DirEntry> rootBatch_, subBatch_;
  size_t rootNext_ = 0, subNext_ = 0;
  bool rootRestart_ = true, subRestart_ = true;
  bool passSawEntries_ = false;  // the root listed something in this pass
  bool passProgress_ = false;    // something was removed or moved up in this pass
  uint64_t hoisted_ = 0;         // names for directories moved up
  DWORD lastError_ = 0;
};

}  // namespace win
}  // namespace si
