{
  "targets": [
    {
      "target_name": "spawn_isolated",
      "sources": ["native/addon.cc", "native/js/convert.cc", "native/js/events.cc", "native/js/internals_js.cc", "native/js/request.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='win'", {
          "sources": ["native/win/backend_win.cc", "native/win/job.cc", "native/win/monitor.cc", "native/win/stdio_handles.cc", "native/win/token.cc", "native/win/win_util.cc", "native/win/internals.cc", "native/win/temp_dir.cc", "native/win/dir_tree.cc", "native/win/janitor.cc", "native/win/desktop.cc", "native/win/appcontainer.cc"],
          "defines": ["UNICODE", "_UNICODE", "_WIN32_WINNT=0x0A00"],
          "libraries": ["advapi32.lib", "kernel32.lib", "shell32.lib", "ole32.lib", "userenv.lib", "wtsapi32.lib", "user32.lib"],
          "msvs_settings": {
            "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/utf-8"] }
          }
        }, {
          "sources": ["native/posix/backend_posix.cc", "native/posix/cgroup.cc", "native/posix/cgroup_pool.cc", "native/posix/child.cc", "native/posix/confine.cc", "native/posix/identity.cc", "native/posix/init_image.cc", "native/posix/monitor.cc", "native/posix/notify.cc", "native/posix/mountinfo.cc", "native/posix/seccomp.cc", "native/posix/trash.cc", "native/posix/vault.cc", "native/posix/sys.cc", "native/posix/internals.cc", "native/posix/glibc_compat.cc"],
          "include_dirs": ["<(INTERMEDIATE_DIR)"],
          "libraries": ["-ldl"],
          "cflags": ["-include", "<(module_root_dir)/native/posix/glibc_compat.h", "-ffunction-sections", "-fdata-sections"],
          "ldflags": ["-Wl,--gc-sections"],
          "actions": [{
            "action_name": "init_image",
            "inputs": ["native/posix/init/init.c", "scripts/build-init.js"],
            "outputs": ["<(INTERMEDIATE_DIR)/init_blob.h"],
            "action": ["node", "scripts/build-init.js", "<(INTERMEDIATE_DIR)/init_blob.h"]
          }]
        }]
      ]
    }
  ]
}
