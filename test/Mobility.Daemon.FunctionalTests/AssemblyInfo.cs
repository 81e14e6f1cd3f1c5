// The daemon's surfaces (Unix sockets, SO_PEERCRED, file modes, keyutils) are Linux's.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
