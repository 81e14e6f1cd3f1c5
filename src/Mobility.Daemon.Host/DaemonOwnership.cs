using System.Net.Sockets;
using Mobility.Daemon.Internal;

namespace Mobility.Daemon.Hosting;

/// <summary>
/// One daemon per state folder and per Unix socket. Before anything binds, <see cref="Acquire"/> takes an
/// exclusive lock (flock) on <c>&lt;state-dir&gt;/mobilityd.lock</c> and on <c>&lt;socket&gt;.lock</c> beside
/// each socket; a second daemon fails there with one line and touches nothing. Holding a socket's lock,
/// the daemon still refuses a path where something else listens or that is not a socket, and removes
/// only a dead socket left by a daemon that died. <see cref="Dispose"/> removes the sockets it owns, then
/// releases the locks. The lock files stay (removing a lock file while locked lets two owners in).
/// </summary>
internal sealed class DaemonOwnership(string stateDir, IEnumerable<string> socketPaths) : IDisposable
{
    public const string StateLockName = "mobilityd.lock";

    private readonly string _stateDir = Path.GetFullPath(stateDir);
    private readonly string[] _socketPaths = socketPaths.Select(Path.GetFullPath).Distinct().ToArray();
    private readonly List<FileStream> _locks = [];
    private readonly List<string> _ownedSockets = [];

    public void Acquire()
    {
        try
        {
            Directory.CreateDirectory(_stateDir);
            Lock(Path.Combine(_stateDir, StateLockName), $"state folder {_stateDir} is in use by another mobilityd");
            foreach (var socket in _socketPaths)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
                Lock(socket + ".lock", $"socket {socket} is in use by another mobilityd");
                ClaimSocketPath(socket);
                _ownedSockets.Add(socket);
            }
        }
        catch
        {
            Release();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var socket in _ownedSockets.Where(Native.IsSocket))
        {
            File.Delete(socket);
        }

        _ownedSockets.Clear();
        Release();
    }

    private void Lock(string path, string inUse)
    {
        FileStream stream;
        try
        {
            // FileShare.None takes flock(LOCK_EX | LOCK_NB) on Unix: released by the kernel when the process dies.
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new DaemonInUseException($"{inUse} ({path} is locked).", e);
        }

        _locks.Add(stream);
    }

    /// <summary>Makes <paramref name="path"/> free for Kestrel: nothing there, or a dead socket (removed).</summary>
    private static void ClaimSocketPath(string path)
    {
        if (!Path.Exists(path))
        {
            return;
        }

        if (!Native.IsSocket(path))
        {
            throw new DaemonInUseException($"{path} exists and is not a socket; not touching it (use another --socket).");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            // Nobody listens: a socket left by a daemon that died. Kestrel cannot bind over it.
            File.Delete(path);
            return;
        }

        throw new DaemonInUseException($"socket {path} is in use: another process accepts connections on it.");
    }

    private void Release()
    {
        foreach (var stream in _locks)
        {
            stream.Dispose();
        }

        _locks.Clear();
    }
}

/// <summary>The state folder or a socket belongs to another daemon (or process): the daemon does not start.</summary>
public sealed class DaemonInUseException : IOException
{
    public DaemonInUseException()
    {
    }

    public DaemonInUseException(string message) : base(message)
    {
    }

    public DaemonInUseException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
