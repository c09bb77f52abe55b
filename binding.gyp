{
  "targets": [
    {
      "target_name": "raftkv_native",
      "sources": [
        "native/addon.cc",
        "native/crc32c.cc",
        "native/format.cc",
        "native/segment.cc",
        "native/sysio.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Werror"],
      "ldflags": ["-pthread"]
    }
  ]
}
