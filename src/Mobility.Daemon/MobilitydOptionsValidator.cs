using System.Globalization;
using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon;

/// <summary>Checks <see cref="MobilitydOptions"/> when the host starts (ValidateOnStart).</summary>
public sealed class MobilitydOptionsValidator : IValidateOptions<MobilitydOptions>
{
    public ValidateOptionsResult Validate(string? name, MobilitydOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        Check(failures, !string.IsNullOrWhiteSpace(options.StateDir), "StateDir (--state-dir) is required.");
        if (!string.IsNullOrWhiteSpace(options.Gns) && !GnsServers.GnsServerList.TryParse(options.Gns, out _, out var gnsError))
        {
            failures.Add($"{MobilitydOptions.GnsOption}: {gnsError}.");
        }

        if (!string.IsNullOrWhiteSpace(options.GnsGrpc) &&
            (!Uri.TryCreate(options.GnsGrpc, UriKind.Absolute, out var grpc) || (grpc.Scheme != Uri.UriSchemeHttp && grpc.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add($"GnsGrpc (--gns-grpc) '{options.GnsGrpc}' must be an absolute http:// or https:// address.");
        }

        foreach (var resolver in (options.GnsResolver ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            CheckEndPoint(failures, resolver, MobilitydOptions.GnsResolverOption, offAllowed: false);
        }

        if (options.EmbeddedGns)
        {
            CheckEndPoint(failures, options.EmbeddedGnsUdp, MobilitydOptions.EmbeddedGnsUdpOption, offAllowed: false);
        }

        CheckEndPoint(failures, options.Http, MobilitydOptions.HttpOption);
        CheckEndPoint(failures, options.Grpc, MobilitydOptions.GrpcOption);
        CheckEndPoint(failures, options.Socks, MobilitydOptions.SocksOption);
        CheckEndPoint(failures, options.Transport, MobilitydOptions.TransportOption, offAllowed: false, emptyIsDefault: true);
        foreach (var control in options.Control.SelectMany(c => c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            CheckEndPoint(failures, control, MobilitydOptions.ControlOption, offAllowed: false);
        }

        var tlsRelays = 0;
        foreach (var relay in MobilitydOptions.RelayEntries(options.Relay))
        {
            var tls = relay.StartsWith(MobilitydOptions.RelayTlsScheme, StringComparison.OrdinalIgnoreCase);
            tlsRelays += tls ? 1 : 0;
            CheckEndPoint(failures, tls ? relay[MobilitydOptions.RelayTlsScheme.Length..] : relay, MobilitydOptions.RelayOption, offAllowed: false);
        }

        foreach (var pin in MobilitydOptions.RelayEntries(options.RelayPin))
        {
            if (global::Mobility.Transport.Relay.PinnedTlsFlowFactory.ParsePin(pin) is null)
            {
                failures.Add($"{MobilitydOptions.RelayPinOption} '{pin}' is not a SHA-256 fingerprint (64 hex digits, colons allowed).");
            }
        }

        if (tlsRelays > 0 && MobilitydOptions.RelayEntries(options.RelayPin).Length == 0)
        {
            failures.Add($"A tls:// relay needs {MobilitydOptions.RelayPinOption}: the SHA-256 of the relay's certificate (TLS is never used unchecked).");
        }

        CheckGnsTls(failures, options);
        foreach (var address in options.Addresses.SelectMany(c => c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (!IPAddress.TryParse(address, out _))
            {
                failures.Add($"Addresses (--address) '{address}' is not an IP address.");
            }
        }

        if (options.Addresses.Length > GnsRecord.MaxLocators - 1)
        {
            failures.Add($"At most {GnsRecord.MaxLocators - 1} addresses fit a record (one locator is kept for the observed address).");
        }

        if (options.Name is { Length: > 0 } recordName && !HostName.IsValid(recordName))
        {
            failures.Add($"Name '{recordName}' is not a valid name: {HostName.Normalize(recordName, out var error) ?? error}");
        }

        Check(failures, options.ControlPort is >= 0 and <= ushort.MaxValue, "ControlPort must be 0 to 65535.");
        Check(failures, options.TransportPort is >= 1 and <= ushort.MaxValue, "TransportPort must be 1 to 65535.");
        Check(failures, options.MaxKnownPeers is >= 1 and <= 1_000_000, "MaxKnownPeers must be 1 to 1000000.");
        Check(failures, options.NativeHeapTrimInterval >= TimeSpan.Zero, "NativeHeapTrimInterval must not be negative (zero turns trimming off).");
        var forwarding = options.Forwarding;
        Check(failures, forwarding.IdleTimeout > TimeSpan.Zero && forwarding.HandshakeTimeout > TimeSpan.Zero && forwarding.ConnectTimeout > TimeSpan.Zero,
            "Forwarding timeouts must be positive.");
        Check(failures, forwarding.MaxRelays is >= 1 and <= 1_000_000, "Forwarding:MaxRelays must be 1 to 1000000.");
        Check(failures, forwarding.UdpIdleTimeout > TimeSpan.Zero, "Forwarding:UdpIdleTimeout must be positive.");
        Check(failures, forwarding.MaxUdpForwards is >= 1 and <= 65_535, "Forwarding:MaxUdpForwards must be 1 to 65535.");
        Check(failures, forwarding.MaxWatchedPeers is >= 1 and <= 100_000, "Forwarding:MaxWatchedPeers must be 1 to 100000.");
        Check(failures, forwarding.Exposed.All(p => p is >= 1 and <= ushort.MaxValue), "Forwarding:Exposed ports must be 1 to 65535.");
        Check(failures, forwarding.OwnerCacheTime >= TimeSpan.Zero && forwarding.NoOwnerCacheTime >= TimeSpan.Zero,
            "Forwarding:OwnerCacheTime and Forwarding:NoOwnerCacheTime must not be negative.");
        Check(failures, forwarding.MaxCachedOwners is >= 1 and <= 1_000_000, "Forwarding:MaxCachedOwners must be 1 to 1000000.");
        var transport = forwarding.Transport;
        Check(failures, transport.KeepAliveInterval > TimeSpan.Zero && transport.DeadPathTimeout > transport.KeepAliveInterval,
            "Forwarding:Transport:KeepAliveInterval must be positive and below Forwarding:Transport:DeadPathTimeout.");
        Check(failures, transport.IdleKeepAliveInterval >= transport.KeepAliveInterval,
            "Forwarding:Transport:IdleKeepAliveInterval must be at least Forwarding:Transport:KeepAliveInterval.");
        Check(failures, transport.PathlessTimeout > TimeSpan.Zero, "Forwarding:Transport:PathlessTimeout must be positive.");
        Check(failures, transport.MaxPendingHandshakes is >= 1 and <= 100_000, "Forwarding:Transport:MaxPendingHandshakes must be 1 to 100000.");
        Check(failures, transport.MaxQueuedHandshakes is >= 0 and <= 1_000_000, "Forwarding:Transport:MaxQueuedHandshakes must be 0 to 1000000.");
        Check(failures, transport.ListenBacklog is >= 1 and <= 1_000_000, "Forwarding:Transport:ListenBacklog must be 1 to 1000000.");
        Check(failures, transport.FastOpenQueue is >= 1 and <= 1_000_000, "Forwarding:Transport:FastOpenQueue must be 1 to 1000000.");
        Check(failures, transport.MaxStandbyPaths is >= 0 and <= 8, "Forwarding:Transport:MaxStandbyPaths must be 0 to 8.");
        foreach (var (port, guids) in forwarding.Allow)
        {
            Check(failures, int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && forwarding.Exposed.Contains(p),
                $"Forwarding:Allow:{port}: the key must be a port listed in Forwarding:Exposed.");
            Check(failures, guids is { Length: > 0 } && guids.All(g => HostGuid.TryParse(g, out _)),
                $"Forwarding:Allow:{port} must list GUIDs (40 hexadecimal characters).");
        }

        var nat = options.Nat;
        Check(failures, nat.RecheckInterval >= TimeSpan.FromSeconds(10), "Nat:RecheckInterval must be at least 10 s (a check sends several probes).");
        Check(failures, nat.ProbeTimeout >= TimeSpan.FromMilliseconds(10) && nat.ProbeTimeout <= TimeSpan.FromSeconds(10), "Nat:ProbeTimeout must be 10 ms to 10 s.");
        Check(failures, nat.Attempts is >= 1 and <= 10, "Nat:Attempts must be 1 to 10.");
        Check(failures, nat.MaxServersPerFamily is >= 1 and <= 16, "Nat:MaxServersPerFamily must be 1 to 16.");
        Check(failures, nat.PortMappingLifetime >= TimeSpan.FromSeconds(120) && nat.PortMappingLifetime <= TimeSpan.FromDays(1),
            "Nat:PortMappingLifetime must be 2 min to 1 day.");
        Check(failures, nat.PortMappingMaxRetryDelay >= TimeSpan.FromSeconds(30), "Nat:PortMappingMaxRetryDelay must be at least 30 s.");
        Check(failures, PortMapping.PortMapper.TryParseGateway(nat.PortMappingGateway, out _),
            $"Nat:PortMappingGateway must be auto, IP or IP:PORT (got '{nat.PortMappingGateway}').");
        var watch = options.AddressWatch;
        Check(failures, watch.RecheckInterval >= TimeSpan.FromMilliseconds(100), "AddressWatch:RecheckInterval must be at least 100 ms.");
        Check(failures, watch.Debounce >= TimeSpan.Zero && watch.Debounce <= TimeSpan.FromMilliseconds(50),
            "AddressWatch:Debounce must be 0 to 50 ms (an update must reach the GNS within 100 ms).");

        var record = options.Record;
        Check(failures, record.TtlSeconds is >= 1 and <= 86_400, "Record:TtlSeconds must be 1 to 86400.");
        Check(failures, record.RefreshFraction is > 0.05 and < 1, "Record:RefreshFraction must be between 0.05 and 1.");
        Check(failures, record.RetryDelay > TimeSpan.Zero && record.MaxRetryDelay >= record.RetryDelay, "Record:RetryDelay must be positive and at most Record:MaxRetryDelay.");
        Check(failures, record.SetAddressesWait >= TimeSpan.Zero, "Record:SetAddressesWait must not be negative.");

        var challenge = options.Challenge;
        Check(failures, challenge.Port is >= 1 and <= ushort.MaxValue, "Challenge:Port must be 1 to 65535.");
        Check(failures, challenge.AttemptTimeout > TimeSpan.Zero, "Challenge:AttemptTimeout must be positive.");
        Check(failures, challenge.Attempts is >= 1 and <= 10, "Challenge:Attempts must be 1 to 10.");
        Check(failures, challenge.PositiveCacheTime >= TimeSpan.Zero && challenge.NegativeCacheTime >= TimeSpan.Zero, "Challenge cache times must not be negative.");
        Check(failures, challenge.MaxOutstanding is >= 1 and <= 1_000_000, "Challenge:MaxOutstanding must be 1 to 1000000.");
        Check(failures, challenge.MaxCachedVerdicts is >= 1 and <= 1_000_000, "Challenge:MaxCachedVerdicts must be 1 to 1000000.");
        Check(failures, challenge.MaxReverseCandidates is >= 1 and <= 1000, "Challenge:MaxReverseCandidates must be 1 to 1000.");

        var limits = options.ControlLimits;
        Check(failures, limits.RequestsPerSecond > 0 && double.IsFinite(limits.RequestsPerSecond), "ControlLimits:RequestsPerSecond must be positive.");
        Check(failures, limits.Burst is >= 1 and <= 1_000_000, "ControlLimits:Burst must be 1 to 1000000.");
        Check(failures, limits.MaxTrackedSources is >= 1 and <= 16_777_216, "ControlLimits:MaxTrackedSources must be 1 to 16777216.");
        var transparent = options.Transparent;
        CheckEndPoint(failures, transparent.Dns, Transparent.TransparentOptions.DnsOption);
        try
        {
            _ = transparent.ParsedPool;
        }
        catch (FormatException e)
        {
            failures.Add(e.Message);
        }

        Check(failures, transparent.MaxMappings is >= 1 and <= 1_000_000, "Transparent:MaxMappings must be 1 to 1000000.");
        Check(failures, transparent.AnswerTtlSeconds is >= 1 and <= 86_400, "Transparent:AnswerTtlSeconds must be 1 to 86400.");
        Check(failures, transparent.QueriesPerSecond > 0 && double.IsFinite(transparent.QueriesPerSecond), "Transparent:QueriesPerSecond must be positive.");
        Check(failures, transparent.QueryBurst is >= 1 and <= 1_000_000, "Transparent:QueryBurst must be 1 to 1000000.");
        Check(failures, transparent.MaxTcpClients is >= 1 and <= 100_000, "Transparent:MaxTcpClients must be 1 to 100000.");
        Check(failures, transparent.UpstreamTimeout > TimeSpan.Zero, "Transparent:UpstreamTimeout must be positive.");
        Check(failures, transparent.SocketMark != 0, "Transparent:SocketMark must not be 0 (0 is every unmarked socket).");
        Check(failures, transparent.MaxUdpSessions is >= 1 and <= 100_000, "Transparent:MaxUdpSessions must be 1 to 100000.");
        Check(failures, transparent.UdpMark is not (0 or 253 or 254 or 255) && transparent.UdpMark != transparent.SocketMark,
            "Transparent:UdpMark must not be 0, 253 to 255 (the kernel's routing tables) or Transparent:SocketMark.");
        Check(failures, transparent.OpportunisticBudget >= TimeSpan.Zero && transparent.OpportunisticBudget <= options.Forwarding.ConnectTimeout,
            "Transparent:OpportunisticBudget must be 0 to Forwarding:ConnectTimeout.");
        foreach (var list in new Func<object>[] { () => transparent.ExcludedPrefixes, () => transparent.ExcludedPorts })
        {
            try
            {
                list();
            }
            catch (FormatException e)
            {
                failures.Add(e.Message);
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>One check for every endpoint option: IP:PORT or [IPv6]:PORT; "off" (and empty) where the option may be off.</summary>
    private static void CheckGnsTls(List<string> failures, MobilitydOptions options)
    {
        var pins = MobilitydOptions.RelayEntries(options.GnsPin);
        foreach (var pin in pins.Where(p => global::Mobility.Net.Tls.CertificatePins.Parse(p) is null))
        {
            failures.Add($"{MobilitydOptions.GnsPinOption} '{pin}' is not a SHA-256 fingerprint (64 hex digits, colons allowed).");
        }

        if (string.IsNullOrWhiteSpace(options.GnsTls))
        {
            if (options.GnsTlsOnly)
            {
                failures.Add($"GnsTlsOnly (--gns-tls-only) needs {MobilitydOptions.GnsTlsOption}.");
            }

            return;
        }

        var tls = options.GnsTls.Trim();
        if (!tls.StartsWith(MobilitydOptions.RelayTlsScheme, StringComparison.OrdinalIgnoreCase))
        {
            failures.Add($"{MobilitydOptions.GnsTlsOption} '{tls}' must be tls://IP:PORT.");
            return;
        }

        CheckEndPoint(failures, tls[MobilitydOptions.RelayTlsScheme.Length..], MobilitydOptions.GnsTlsOption, offAllowed: false);
        if (pins.Length == 0)
        {
            failures.Add($"{MobilitydOptions.GnsTlsOption} needs {MobilitydOptions.GnsPinOption}: the SHA-256 of the GNS's certificate (TLS is never used unchecked).");
        }
    }

    private static void CheckEndPoint(List<string> failures, string? value, string option, bool offAllowed = true, bool emptyIsDefault = false)
    {
        if (emptyIsDefault && string.IsNullOrWhiteSpace(value))
        {
            return;
        }

        if (!EndPointSetting.TryParse(value, option, out var endPoint, out var error, emptyIsOff: offAllowed))
        {
            failures.Add(error);
        }
        else if (endPoint is null && !offAllowed)
        {
            failures.Add($"{option} must be IP:PORT or [IPv6]:PORT, not '{value}'.");
        }
    }

    private static void Check(List<string> failures, bool ok, string message)
    {
        if (!ok)
        {
            failures.Add(message);
        }
    }
}
