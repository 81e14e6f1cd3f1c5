using Mobility.Daemon.Hosting;

// mobilityd: see docs/mobilityd.md. Flags, appsettings.json and MOBILITYD_ environment variables
// configure it; it prints one ready line on stdout when listening and logs to stderr.
return await MobilitydHost.RunAsync(args);
