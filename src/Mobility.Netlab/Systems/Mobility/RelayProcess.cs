using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mobility.Net.Processes;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Systems.Mobility;

/// <summary>A real <c>mobility-relay serve</c> on a public host of a lab (docs/nat.md, "Relays").</summary>
public sealed class RelayProcess
{
    public const int Port = 7395;

    private RelayProcess(NamespaceProcess process, IPEndPoint tcp, IPEndPoint? tls)
    {
        Process = process;
        Tcp = tcp;
        Tls = tls;
    }

    public NamespaceProcess Process { get; }

    /// <summary>The plain TCP endpoint, as the ready line names it (what a daemon's <c>--relay</c> gets).</summary>
    public IPEndPoint Tcp { get; }

    /// <summary>The TLS endpoint, or null without <c>--tls-listen</c>.</summary>
    public IPEndPoint? Tls { get; }

    /// <summary>
    /// Starts the relay on <paramref name="host"/>'s address, plain TCP on <see cref="Port"/>, plus any
    /// <paramref name="extraArguments"/> (e.g. <c>--tls-listen</c>); returns once it printed its ready line.
    /// </summary>
    public static async Task<RelayProcess> StartAsync(Lab lab, LabHost host, string workingDirectory, CancellationToken cancellationToken,
        IReadOnlyList<string>? extraArguments = null)
    {
        ArgumentNullException.ThrowIfNull(lab);
        ArgumentNullException.ThrowIfNull(host);
        var (file, prefix) = MobilityExecutables.Relay();
        Directory.CreateDirectory(workingDirectory);
        string[] arguments = [.. prefix, "serve", "--listen", new IPEndPoint(host.PrimaryAddress, Port).ToString(), .. extraArguments ?? []];
        var process = lab.StartProcess(host.Namespace, file, arguments, readyLine: ReadyLine.RelayPrefix, workingDirectory: workingDirectory);
        await process.WaitReadyAsync(DaemonProcess.StartTimeout, cancellationToken).ConfigureAwait(false);
        var ready = ReadyLine.Find(process.StandardOutput, ReadyLine.RelayPrefix);
        var tcp = ready.EndPoint("tcp") ?? throw new CommandFailedException("mobility-relay's ready line has no tcp endpoint: " + ready.Text);
        return new RelayProcess(process, tcp, ready.EndPoint("tls"));
    }

    /// <summary>
    /// A self-signed certificate for a relay's TLS endpoint, made by <c>openssl req -x509</c> in <paramref name="directory"/>:
    /// the PEM files and the SHA-256 of the certificate (what a daemon's <c>--relay-pin</c> gets).
    /// </summary>
    public static async Task<(string Certificate, string Key, string Pin)> CreateCertificateAsync(string directory, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var certificate = Path.Combine(directory, "relay.crt");
        var key = Path.Combine(directory, "relay.key");
        var result = await CommandRunner.RunAsync("openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=mobility-relay", "-keyout", key, "-out", certificate],
            TimeSpan.FromSeconds(60), cancellationToken, standardInput: "").ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new CommandFailedException($"openssl req -x509: {result.StandardError.Trim()}");
        }

        using var parsed = X509CertificateLoader.LoadCertificateFromFile(certificate);
        return (certificate, key, Convert.ToHexStringLower(SHA256.HashData(parsed.RawData)));
    }
}
