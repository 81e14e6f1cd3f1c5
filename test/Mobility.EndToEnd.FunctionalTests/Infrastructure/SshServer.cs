using System.Diagnostics;
using System.Net.Sockets;

namespace Mobility.EndToEnd.FunctionalTests.Infrastructure;

/// <summary>
/// An OpenSSH server on a loopback port for one test: throw-away host and client keys and its own
/// configuration in a temporary folder, public-key login for the current user only, no PAM and no
/// StrictModes (so that it works as root in a container and in a world-readable /tmp).
/// </summary>
public sealed class SshServer : IAsyncDisposable
{
    public const string Sshd = "/usr/sbin/sshd";
    public const string Ssh = "/usr/bin/ssh";
    public const string KeyGen = "/usr/bin/ssh-keygen";

    private readonly Process _process;
    private readonly string _folder;

    private SshServer(Process process, string folder, int port)
    {
        _process = process;
        _folder = folder;
        Port = port;
    }

    public int Port { get; }

    public string ClientKey => Path.Combine(_folder, "client_key");

    public string User { get; } = Environment.UserName;

    /// <summary>Null when OpenSSH (server and client) is installed, else why the test cannot run.</summary>
    public static string? Missing()
        => new[] { Sshd, Ssh, KeyGen }.FirstOrDefault(p => !File.Exists(p)) is { } path
            ? $"{path} is missing (apt-get install -y openssh-server openssh-client)"
            : null;

    public static async Task<SshServer> StartAsync(TimeSpan timeout)
    {
        var folder = Directory.CreateTempSubdirectory("sshd-").FullName;
        await KeyGenAsync(Path.Combine(folder, "host_key"), timeout);
        await KeyGenAsync(Path.Combine(folder, "client_key"), timeout);
        File.Copy(Path.Combine(folder, "client_key.pub"), Path.Combine(folder, "authorized_keys"));
        if (Environment.UserName == "root")
        {
            // sshd started by root insists on its privilege separation folder.
            Directory.CreateDirectory("/run/sshd");
        }

        var port = Ports.FreeTcp();
        var config = Path.Combine(folder, "sshd_config");
        await File.WriteAllLinesAsync(config,
        [
            "ListenAddress 127.0.0.1",
            $"Port {port}",
            $"HostKey {folder}/host_key",
            $"AuthorizedKeysFile {folder}/authorized_keys",
            $"PidFile {folder}/sshd.pid",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            $"AllowUsers {Environment.UserName}",
        ]);
        var info = new ProcessStartInfo(Sshd) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-D", "-e", "-f", config })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        var server = new SshServer(process, folder, port);
        process.ErrorDataReceived += (_, e) => server.OnLog(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"sshd exited with {process.ExitCode}:\n{server.Log}");
            }

            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token);
                return server;
            }
            catch (SocketException)
            {
                await Task.Delay(50, cts.Token);
            }
        }
    }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    private readonly System.Text.StringBuilder _log = new();

    private void OnLog(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        finally
        {
            _process.Dispose();
            Directory.Delete(_folder, recursive: true);
        }
    }

    private static async Task KeyGenAsync(string path, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(KeyGen) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-q", "-t", "ed25519", "-N", "", "-f", path })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        await process.WaitForExitAsync().WaitAsync(timeout);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ssh-keygen failed: {await process.StandardError.ReadToEndAsync()}");
        }
    }
}
