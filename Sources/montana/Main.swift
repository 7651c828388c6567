import ArgumentParser
@main struct Montana: ParsableCommand {}
