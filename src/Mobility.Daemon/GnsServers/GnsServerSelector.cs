using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.GnsServers;

/// <summary>
/// Picks the GNS endpoint the daemon uses among several (<see cref="GnsServerList"/>), the way Happy
/// Eyeballs (RFC 8305) picks an address: the candidates are probed in order, the next one starting
/// <see cref="Stagger"/> after the previous (or as soon as it failed), and the first that answers wins;
/// the others are abandoned. A probe is a lookup of a GUID nobody holds: any answer, "not found"
/// included, proves the endpoint serves the GNS protocol over a path that works.
/// </summary>
public sealed partial class GnsServerSelector
{
    /// <summary>Delay before the next candidate is tried: RFC 8305's recommended connection attempt delay.</summary>
    public TimeSpan Stagger { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long one probe waits for its answer (one retransmission included).</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The whole selection's budget; when it runs out with no answer, the first candidate is used.</summary>
    public TimeSpan Budget { get; init; } = TimeSpan.FromSeconds(3);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Resolves the names of the list (null: the system's resolver).</summary>
    public GnsNameResolver? NameResolver { get; init; }

    /// <summary>Answers whether the GNS at an endpoint responded; replaced in tests of the ordering only.</summary>
    public Func<IPEndPoint, CancellationToken, Task<bool>>? Probe { get; init; }

    /// <summary>
    /// Resolves <paramref name="servers"/> and returns every candidate, the endpoint that answered first at the head
    /// (or the first candidate when none did within <see cref="Budget"/>), the others after it in their order: the
    /// GNS client starts on the head and keeps the others as its alternates (<see cref="GnsClientOptions.Alternates"/>).
    /// Throws <see cref="IOException"/> when no name resolves and no address was given.
    /// </summary>
    public async Task<IReadOnlyList<IPEndPoint>> ChooseAsync(GnsServerList servers, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentNullException.ThrowIfNull(logger);
        var unresolved = new List<string>();
        var (candidates, _) = await servers.ResolveAsync(NameResolver, unresolved, cancellationToken).ConfigureAwait(false);
        if (candidates.Count == 0)
        {
            throw new IOException($"{MobilitydOptions.GnsOption}: no address found for {string.Join(", ", unresolved)}.");
        }

        var tried = string.Join(' ', candidates) + (unresolved.Count == 0 ? "" : $"; unresolved: {string.Join(", ", unresolved)}");
        if (await SelectAsync(candidates, cancellationToken).ConfigureAwait(false) is { } chosen)
        {
            Log.Chosen(logger, chosen, tried);
            return [chosen, .. candidates.Where(c => !c.Equals(chosen))];
        }

        Log.NoneAnswered(logger, tried, candidates[0]);
        return candidates;
    }

    /// <summary>The first of <paramref name="candidates"/> whose probe succeeded, or null when none did within <see cref="Budget"/>.</summary>
    public Task<IPEndPoint?> SelectAsync(IReadOnlyList<IPEndPoint> candidates, CancellationToken cancellationToken)
        => GnsEndPointChoice.RaceAsync(candidates, Probe ?? ProbeAsync, Stagger, Budget, TimeProvider, cancellationToken);

    private async Task<bool> ProbeAsync(IPEndPoint candidate, CancellationToken cancellationToken)
    {
        var client = new GnsClient(new GnsClientOptions
        {
            Server = candidate,
            CacheEnabled = false,
            Attempts = 2,
            RequestTimeout = ProbeTimeout / 2,
            MaxAttemptTimeout = ProbeTimeout / 2,
            TimeProvider = TimeProvider,
        });
        await using (client.ConfigureAwait(false))
        {
            var nobody = HostGuid.FromBytes(RandomNumberGenerator.GetBytes(HostGuid.Size));
            await client.LookupAsync(nobody, cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>Log events of the GNS endpoint choice (ids 4100-4119).</summary>
    private static partial class Log
    {
        [LoggerMessage(4100, LogLevel.Information, "GNS at {EndPoint} answered first of {Candidates}")]
        public static partial void Chosen(ILogger logger, IPEndPoint endPoint, string candidates);

        [LoggerMessage(4101, LogLevel.Warning, "No GNS answered among {Candidates}; using {EndPoint}")]
        public static partial void NoneAnswered(ILogger logger, string candidates, IPEndPoint endPoint);
    }
}
