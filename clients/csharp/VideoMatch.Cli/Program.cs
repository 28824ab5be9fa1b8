using VideoMatch.Cli;

return await Cli.RunAsync(args, Console.Out, Console.Error, new VideoMatch.Cli.Video.FfmpegVideoDecoder()).ConfigureAwait(false);
