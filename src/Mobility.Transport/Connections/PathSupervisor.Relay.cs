using Microsoft.Extensions.Logging;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Transport.Connections;

/// <summary>
/// The peer's relay in a resume (happy eyeballs across path kinds). A record lists the relay locator
/// after the peer's private and observed ones, which after the peer moved behind another NAT lead
/// nowhere (a black hole or a refusal). The relay candidate does not wait for each of them: it joins
/// the connect race once one race delay has passed without a winner (<see cref="RaceConnectAsync"/>),
/// and when a direct flow is up but its Resume is unanswered one race delay after it went, a flow
/// through the relay races it (<see cref="AwaitAnswerAsync"/>). A direct first flight (TCP Fast Open)
/// "connects" at once, its SYN only queued: only the ResumeAck answers. The first answer wins: a
/// ResumeAck on the direct flow before the relay's flow is up drops the relay's connect (its flow, if
/// it still opens one, is aborted); a relay flow up first carries the newest Resume, which the
/// connection then uses.
/// </summary>
internal sealed partial class PathSupervisor
{
    private static bool IsRelay(ConnectCandidate candidate) => candidate.Endpoint is RelayEndPoint;

    private static List<ConnectCandidate> RelayCandidates(IReadOnlyList<ConnectCandidate> candidates) => [.. candidates.Where(IsRelay)];

    /// <summary>Whether <paramref name="flow"/> runs through a relay (spliced by one, or opened to a relay endpoint).</summary>
    private static bool Relayed(IFlow flow) => flow is RelayedFlow || flow.RemoteEndPoint is RelayEndPoint;

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>
    /// When the relay joins a resume whose Resume went on <paramref name="flow"/> (now): one race delay
    /// later, if the attempt has relay candidates and <paramref name="flow"/> is not relayed; else null.
    /// </summary>
    private long? RelayJoinsAt(IFlow flow, IReadOnlyList<ConnectCandidate> candidates)
    {
        if (Relayed(flow) || !candidates.Any(IsRelay))
        {
            return null;
        }

        return _time.GetTimestamp() + (long)(RaceDelay(_connection.LastRtt ?? _flowRtt, _options).TotalSeconds * _time.TimestampFrequency);
    }

    /// <summary>How long until the relay joins <paramref name="race"/> (zero when due; null: it does not).</summary>
    private TimeSpan? UntilRelayJoins(ResumeRace race)
    {
        if (race.RelayJoinsAt is not { } at)
        {
            return null;
        }

        var now = _time.GetTimestamp();
        return now >= at ? TimeSpan.Zero : TimeSpan.FromSeconds((at - now) / (double)_time.TimestampFrequency);
    }

    private static partial class RelayRaceLog
    {
        [LoggerMessage(9700, LogLevel.Debug, "Connection {Token:x32}: no direct connect within {ElapsedMs:0} ms; the relay joins the race: {Candidates}")]
        public static partial void Joins(ILogger logger, UInt128 token, string candidates, double elapsedMs);

        [LoggerMessage(9701, LogLevel.Debug, "Connection {Token:x32}: the Resume via {Remote} is unanswered after {WaitedMs:0} ms; a flow through the relay races it: {Candidates}")]
        public static partial void RacesResume(ILogger logger, UInt128 token, System.Net.IPEndPoint? remote, double waitedMs, string candidates);
    }
}
