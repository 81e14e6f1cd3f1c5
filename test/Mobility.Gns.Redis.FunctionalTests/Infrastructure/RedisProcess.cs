using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Gns.Redis.FunctionalTests.Infrastructure;

/// <summary>
/// A redis-server on 127.0.0.1 on a free port, in the foreground (--daemonize no), with its data in a
/// temporary folder. Kill() is SIGKILL; Start() again reuses the port and the data.
/// </summary>
internal sealed class RedisProcess : IDisposable
{
    private readonly string[] _extraArguments;
    private Process? _process;

    public RedisProcess(params string[] extraArguments)
    {
        _extraArguments = extraArguments;
        Directory = Path.Combine(Path.GetTempPath(), "mobility-redis-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        Port = Ports.FreeTcp();
        Start();
    }

    public string Directory { get; }

    public int Port { get; }

    public string Configuration => $"127.0.0.1:{Port}";

    public static string Executable => FindOnPath("redis-server")
        ?? throw new InvalidOperationException("redis-server is not on PATH: these tests need a real Redis (apt-get install redis-server).");

    public void Start()
    {
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
                 {
                     "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                     "--daemonize", "no", "--save", "", "--dir", Directory, "--logfile", Path.Combine(Directory, "redis.log"),
                 }.Concat(_extraArguments))
        {
            info.ArgumentList.Add(argument);
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
        WaitUntilListening();
    }

    /// <summary>SIGKILL: no shutdown, no final fsync, no AOF rewrite.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }
    }

    public void Dispose()
    {
        Kill();
        _process?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static string? FindOnPath(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    private void WaitUntilListening()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}: {ReadLog()}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                using var stream = client.GetStream();
                stream.ReadTimeout = 2000;
                stream.Write("PING\r\n"u8);
                var buffer = new byte[64];
                var read = stream.Read(buffer);
                if (read > 0 && buffer[0] == (byte)'+')
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }
            catch (IOException)
            {
            }

            Thread.Sleep(50);
        }

        throw new TimeoutException($"redis-server on port {Port} did not answer PING: {ReadLog()}");
    }

    private string ReadLog()
    {
        var log = Path.Combine(Directory, "redis.log");
        return File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(10)) : "(no log)";
    }
}

/// <summary>A 3-master Redis Cluster on loopback, started and stopped by scripts/redis-cluster.</summary>
internal sealed class RedisClusterProcess : IDisposable
{
    public RedisClusterProcess()
    {
        _ = RedisProcess.Executable;
        Directory = Path.Combine(Path.GetTempPath(), "mobility-redis-cluster-" + Guid.NewGuid().ToString("N"));
        Exception? last = null;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var basePort = Random.Shared.Next(20000, 29000);
            if (!Enumerable.Range(basePort, 3).SelectMany(p => new[] { p, p + 10000 }).All(IsFree))
            {
                continue;
            }

            try
            {
                Configuration = Run("start", basePort.ToString(System.Globalization.CultureInfo.InvariantCulture), Directory).Trim();
                return;
            }
            catch (InvalidOperationException e)
            {
                last = e;
            }
        }

        throw new InvalidOperationException("Could not start the Redis Cluster.", last);
    }

    public string Directory { get; }

    public string Configuration { get; } = "";

    public void Dispose()
    {
        Run("stop", Directory);
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string Run(params string[] arguments)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "redis-cluster"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException("scripts/redis-cluster timed out.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"scripts/redis-cluster {string.Join(' ', arguments)} failed: {error.Result}");
        }

        return output.Result;
    }
}
